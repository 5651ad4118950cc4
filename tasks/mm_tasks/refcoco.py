"""The ``refcoco`` task: its options, dataset and evaluation (accuracy@0.5)."""
from dataclasses import dataclass, field

import torch
from fairseq.tasks import register_task

from data.dictionary import VocabLayout, load_ofa_dictionary
from data.file_dataset import clean_text
from data.mm_data.refcoco_dataset import RefcocoDataset
from tasks.evaluation import best_tokens, sample_ids
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask, ScstConfig
from utils import metrics


@dataclass
class RefcocoConfig(OFAConfig, GenerationEvalConfig, ScstConfig):
    eval_acc: bool = field(default=False, metadata={"help": "evaluation with accuracy (IoU >= 0.5)"})
    max_image_size: int = field(default=512, metadata={"help": "max image size for normalization"})
    train_box_augment: bool = field(
        default=False,
        metadata={"help": "augment training rows with random scale, box-preserving crop and horizontal flip "
                          "(left/right swapped in the text); off reproduces the original"},
    )


@register_task("refcoco", dataclass=RefcocoConfig)
class RefcocoTask(OFATask):
    """Visual grounding (RefCOCO/+/g): the box as four location tokens; ``score`` is accuracy@0.5 (IoU >= 0.5
    with the reference box), validated with --eval-acc."""

    dataset_cls = RefcocoDataset
    generation_defaults = {"beam": 5, "min_len": 4, "max_len_a": 0, "max_len_b": 4, "no_repeat_ngram_size": 3}
    modelscope_pipeline = ("visual-grounding", "generation")
    request_text = "a referring expression (--text)"
    request_label = "Referring expression"
    tsv_columns = "0,4,2,3"
    annotation_keys = ("text", "box")
    metric_name = "score"
    metric_flag = "eval_acc"
    metric_generates = True

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "max_image_size": self.cfg.max_image_size,
                "train_box_augment": self.cfg.train_box_augment}

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """Generators write only ``<bin_i>`` tokens (and eos) on every path: validation, SCST, evaluate.py and
        prediction, so a weak model cannot write a word where a coordinate belongs."""
        return super().build_generator(models, args, seq_gen_cls, {"bins_only": True, **(extra_gen_cls_kwargs or {})},
                                       prefix_allowed_tokens_fn)

    def eval_step(self, generator, models, sample, **kwargs):
        """Generate four ``<bin_i>`` tokens, map them to a box in original pixels, score IoU >= 0.5."""
        hypos = self.inference_step(generator, models, sample)
        bins = []
        for i in range(len(hypos)):
            tokens = best_tokens(hypos, i)[:-1]  # drop eos
            if tokens.numel() != 4:
                # validation's generator comes from train.py's --eval-args; evaluate.py/predict.py have the flags
                fix = ("""--eval-args '{"beam":5,"min_len":4,"max_len_a":0,"max_len_b":4}'"""
                       if generator is getattr(self, "sequence_generator", None) else
                       "--min-len 4 --max-len-a 0 --max-len-b 4")
                raise ValueError(f"refcoco: sample {i} generated {tokens.numel()} coordinate tokens instead of 4; "
                                 f"generate with {fix}")
            bins.append(tokens - self.vocab.bins.start)
        boxes = metrics.bins_to_boxes(torch.stack(bins), self.vocab.num_bins, self.cfg.max_image_size,
                                      sample["w_resize_ratios"], sample["h_resize_ratios"])
        results = [{"uniq_id": sample_id, "box": boxes[i].tolist()} for i, sample_id in enumerate(sample_ids(sample))]
        return results, metrics.grounding_hits(boxes, sample["region_coords"]).tolist()

    def example_of(self, results, sample):
        return results[0]["box"], sample["region_coords"][0].tolist()

    def request_row(self, uid, image, request):
        # the box column is the target of training; prediction ignores it, so any box inside the image serves
        return [uid, image, self.text_of(request), "0,0,1,1"]

    def prediction_output(self, result, request):
        """The box in pixels of the input image."""
        return {"box": [round(float(v), 2) for v in result["box"]]}

    @classmethod
    def rows_of_annotation(cls, item, uid, image, split, labels):
        """``text`` and ``box`` [x0, y0, x1, y1] in pixels."""
        box = [float(v) for v in item["box"]]
        if len(box) != 4:
            raise ValueError("'box' must be [x0, y0, x1, y1]")
        return [[uid, uid, clean_text(item["text"]), ",".join(f"{v:.2f}" for v in box), image]]

    @classmethod
    def modelscope_settings(cls, task_cfg, beam_search, answers):
        # our generator writes only <bin_i> tokens here; ModelScope's does so with gen_box and a constraint range
        bins = VocabLayout.of(load_ofa_dictionary()).bins  # the ports' layout: 8192 codes, 1000 bins
        beam_search.setdefault("constraint_range", f"{bins.start},{bins.stop}")
        beam_search["gen_box"] = True
        return super().modelscope_settings(task_cfg, beam_search, answers)
