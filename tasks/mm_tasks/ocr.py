"""The ``ocr`` task (OFA-OCR): text recognition in text-line and document images, scored by exact match."""
from dataclasses import dataclass, field

from fairseq import utils as fairseq_utils
from fairseq.tasks import register_task

from data.mm_data.ocr_dataset import OcrDataset
from tasks.evaluation import sample_ids, symbols_to_strip
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask
from utils.metrics import ocr_scores

# distinct stand-ins for the dictionary's <unk> so an unknown token never matches (the original's strings)
UNK_IN_HYPOTHESIS = "UNKNOWNTOKENINHYP"
UNK_IN_REFERENCE = "UNKNOWNTOKENINREF"


@dataclass
class OcrConfig(OFAConfig, GenerationEvalConfig):
    is_document: bool = field(
        default=False, metadata={"help": "documents: resize to one 64x1920 line cut into 4 rows (patch size 480)"}
    )


@register_task("ocr", dataclass=OcrConfig)
class OcrTask(OFATask):
    """OFA-OCR (the original defines it but never registers it). Validation decodes with ``--eval-args`` and
    logs ``acc``: hypothesis equals label after BPE decoding with every space removed."""

    dataset_cls = OcrDataset
    generation_defaults = {"beam": 5, "max_len_b": 64, "no_repeat_ngram_size": 0}
    metric_name = "acc"
    metric_generates = True

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "is_document": self.cfg.is_document}

    def decode_text(self, tokens, unk_string: str, strip: set[int]) -> str:
        """Token ids -> text without spaces (BERT decoding spaces out Chinese characters)."""
        text = self.tgt_dict.string(tokens.int().cpu(), unk_string=unk_string, extra_symbols_to_ignore=strip)
        return self.bpe.decode(text).strip().replace(" ", "")

    def eval_step(self, generator, models, sample, **kwargs):
        """Beam-search each image's text; per sample ``{"uniq_id", "hyp", "ref"}`` and 1.0 for an exact match."""
        hypos = self.inference_step(generator, models, sample)
        results = []
        for i, sample_id in enumerate(sample_ids(sample)):
            if not hypos[i]:
                raise ValueError(f"the generator finished no hypothesis for sample {sample_id}; raise "
                                 "--max-len-b (evaluate.py, predict.py) or max_len_b in --eval-args (train.py)")
            target = fairseq_utils.strip_pad(sample["target"][i], self.tgt_dict.pad())
            results.append({
                "uniq_id": sample_id,
                "hyp": self.decode_text(hypos[i][0]["tokens"], UNK_IN_HYPOTHESIS, symbols_to_strip(self, generator)),
                "ref": self.decode_text(target, UNK_IN_REFERENCE, {self.tgt_dict.eos()}),
            })
        return results, [float(r["hyp"] == r["ref"]) for r in results]

    def compute_metrics(self, records):
        """``acc`` and ``ned`` (1 - normalised edit distance) over the merged ``{"result": ...}`` records."""
        results = [record["result"] for record in records]
        return ocr_scores([r["hyp"] for r in results], [r["ref"] for r in results]) if results else {}

    def request_row(self, uid, image, request):
        return [uid, image, ""]

    def prediction_output(self, result, request):
        return {"text": result["hyp"]}
