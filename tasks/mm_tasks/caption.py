"""The ``caption`` task: its options, dataset and evaluation (CIDEr-D)."""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.ofa_dataset import strip_punctuation
from data.mm_data.caption_dataset import CaptionDataset
from data.file_dataset import clean_text
from tasks.evaluation import best_tokens, decode_tokens, sample_ids
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask, ScstConfig
from utils import metrics
from utils.cider_d import CORPUS, CiderD

logger = logging.getLogger(__name__)


@dataclass
class CaptionConfig(OFAConfig, GenerationEvalConfig, ScstConfig):
    eval_bleu: bool = field(default=False, metadata={"help": "evaluation with BLEU scores"})
    eval_cider: bool = field(default=False, metadata={"help": "evaluation with CIDEr scores"})
    eval_cider_cached_tokens: Optional[str] = field(
        default=None, metadata={"help": "path to cached cPickle file used to calculate CIDEr scores"}
    )
    skip_coco_scores: bool = field(default=False, metadata={
        "help": "evaluate.py reports CIDEr-D only, without the COCO caption scores (BLEU, METEOR, ROUGE-L, CIDEr), "
                "whose java METEOR takes about 10 s to start"})


@register_task("caption", dataclass=CaptionConfig)
class CaptionTask(OFATask):
    """Image captioning (COCO); CIDEr-D at validation with --eval-cider, SCST with --scst."""

    dataset_cls = CaptionDataset
    generation_defaults = {"beam": 5, "max_len_b": 16, "no_repeat_ngram_size": 3}
    modelscope_pipeline = ("image-captioning", "generation")
    request_instruction = True
    tsv_columns = "0,4,2"
    annotation_keys = ("caption",)
    metric_name = "cider"
    metric_flag = "eval_cider"
    metric_generates = True

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "scst": self.cfg.scst}

    def __init__(self, cfg: CaptionConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if cfg.eval_bleu:
            raise ValueError("--eval-bleu is not supported; validate captions with --eval-cider "
                             "(and score BLEU with evaluate.py)")
        self._cider_scorer = None

    @property
    def cider_scorer(self) -> CiderD:
        """CIDEr-D with the document frequencies of --eval-cider-cached-tokens, else of the references scored
        together (loaded on first use: evaluate.py may run where the training's cached tokens are not)."""
        if self._cider_scorer is None:
            path = self.cfg.eval_cider_cached_tokens
            if path and not self.cfg.eval_cider and not os.path.isfile(path):
                logger.warning("--eval-cider-cached-tokens %s not found: CIDEr-D document frequencies come from "
                               "the evaluated references", path)
                path = None
            self._cider_scorer = CiderD(df=path or CORPUS)
        return self._cider_scorer

    def eval_step(self, generator, models, sample, **kwargs):
        """Beam-search captions, detokenized and stripped of punctuation as the original does."""
        hypos = self.inference_step(generator, models, sample)
        results = [{"image_id": str(sample_id), "caption": strip_punctuation(decode_tokens(self, generator,
                                                                                          best_tokens(hypos, i)))}
                   for i, sample_id in enumerate(sample_ids(sample))]
        return results, None

    def sample_references(self, sample) -> list[list[str]]:
        """Reference captions of each sample, decoded from its ``&&``-joined target."""
        references = []
        for target in sample["target"]:
            text = self.tgt_dict.string(target[target.ne(self.vocab.pad)].int().cpu(),
                                        extra_symbols_to_ignore={self.vocab.eos})
            references.append([caption.strip() for caption in self.bpe.decode(text).split("&&") if caption.strip()])
        return references

    def example_of(self, results, sample):
        return results[0]["caption"], " && ".join(self.sample_references(sample)[0])

    def sample_scores(self, results, sample):
        """CIDEr-D of each caption against its references."""
        references = [[strip_punctuation(ref) for ref in refs] for refs in self.sample_references(sample)]
        return self.cider_scorer.score([r["caption"] for r in results], references).tolist()

    def compute_metrics(self, records):
        """``cider`` (CIDEr-D, as validated) plus, unless --skip-coco-scores, the COCO caption scores (BLEU, METEOR,
        ROUGE-L, CIDEr, needing java)."""
        if not records or not all(record["references"] for record in records):
            logger.warning("caption metrics skipped: some samples have no reference captions")
            return {}
        captions = [record["result"]["caption"] for record in records]
        references = [[strip_punctuation(ref) for ref in record["references"]] for record in records]
        scores = {self.metric_name: float(self.cider_scorer.score(captions, references).mean())}
        if self.cfg.skip_coco_scores:
            return scores
        if not metrics.java_available():
            logger.warning("COCO caption scores skipped: pycocoevalcap needs java on PATH")
            return scores
        predictions = {r["result"]["image_id"]: r["result"]["caption"] for r in records}
        return {**scores, **metrics.coco_caption_scores(predictions, {r["result"]["image_id"]: r["references"]
                                                                      for r in records})}

    def request_row(self, uid, image, request):
        return [uid, image, ""]

    def prediction_output(self, result, request):
        # a free instruction's output is text, not a caption
        return {"text" if request.instruction else "caption": result["caption"]}

    @classmethod
    def rows_of_annotation(cls, item, uid, image, split, labels):
        """``caption``: one reference or a list; training rows hold one caption each, others all joined by ``&&``."""
        captions = item["caption"] if isinstance(item["caption"], list) else [item["caption"]]
        captions = [clean_text(c).replace("&&", "&") for c in captions]
        if split == "train":
            return [[f"{uid}_{k}" if len(captions) > 1 else uid, uid, c, "", image] for k, c in enumerate(captions)]
        return [[uid, uid, "&&".join(captions), "", image]]
