"""The ``--bpe bert`` text encoding of OFA-CN: uncased BERT WordPiece over ``vocab.txt`` (utils/BERT_CN_dict).

The original builds fairseq's ``bert`` BPE, i.e. transformers' ``BertTokenizer(vocab.txt, do_lower_case=True)``.
The ``tokenizers`` package gives the same tokens (``tests/data/test_cn_ocr_parity.py``) without transformers:
text is cleaned (control and format characters dropped, whitespace made spaces), lower-cased with accents
stripped, every CJK ideograph made a word, split on whitespace and punctuation, then cut into WordPieces
(``##`` continues a word); characters missing from the vocabulary become ``[UNK]``.
"""
from __future__ import annotations

import os

BERT_CN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "utils", "BERT_CN_dict")

#: symbols of the OFA-CN dictionary: fairseq's 4 specials, vocab.txt's 21128 WordPieces, <mask>, 8192 codes, 1000 bins
OFA_CN_DICTIONARY_SIZE = 30325
#: BERT's special tokens: typed in text they stay one token (transformers splits them off before WordPiece)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: transformers' ``clean_up_tokenization``: no space before ASCII punctuation and English contractions
CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
           (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class BertBPE:
    """``encode`` text to space-separated WordPieces (symbols of ``dict.txt``), ``decode`` them back to text.

    Decoding joins words with spaces, so Chinese comes out one character per word (``图 片 上``), as the
    original's; the OCR task removes the spaces before scoring.
    """

    def __init__(self, vocab_file: str):
        if not os.path.isfile(vocab_file):
            raise FileNotFoundError(f"--bpe bert: {vocab_file} not found (set --bpe-dir to a folder with vocab.txt "
                                    f"and dict.txt, e.g. utils/BERT_CN_dict)")
        from tokenizers import Tokenizer
        from tokenizers.models import WordPiece
        from tokenizers.normalizers import BertNormalizer
        from tokenizers.pre_tokenizers import BertPreTokenizer

        self.vocab_file = vocab_file
        tokenizer = Tokenizer(WordPiece.from_file(vocab_file, unk_token="[UNK]", max_input_chars_per_word=100))
        tokenizer.normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                              lowercase=True)
        tokenizer.pre_tokenizer = BertPreTokenizer()
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
        self.tokenizer = tokenizer

    def encode(self, x: str) -> str:
        return " ".join(self.tokenizer.encode(x, add_special_tokens=False).tokens)

    def decode(self, x: str) -> str:
        text = x.replace(" ##", "").strip()
        for before, after in CLEANUP:
            text = text.replace(before, after)
        return text

    def is_beginning_of_word(self, x: str) -> bool:
        return not x.startswith("##")
