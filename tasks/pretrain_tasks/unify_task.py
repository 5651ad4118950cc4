"""``unify_task``: OFA's multi-task pretraining over vision-language, text, image and detection TSVs."""

import json
import os
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.file_dataset import FileDataset
from data.pretrain_data.unify_dataset import UnifyDataset
from tasks.ofa_task import OFAConfig, OFATask

NEGATIVE_SAMPLE_FILES = ("all_captions.txt", "object.txt", "type2ans.json")


@dataclass
class UnifyConfig(OFAConfig):
    max_image_size: int = field(default=512, metadata={"help": "box coordinates are divided by this before binning"})
    text_data: Optional[str] = field(default=None, metadata={"help": "pure text data (uniq-id, text)"})
    image_data: Optional[str] = field(
        default=None, metadata={"help": "pure image data (uniq-id, 256x256 image, image codes of its centre)"})
    detection_data: Optional[str] = field(
        default=None, metadata={"help": "detection data (uniq-id, image, x0,y0,x1,y1,object_id,object_name&&...)"})
    text_selected_cols: Optional[str] = field(default=None, metadata={"help": "pure text data selected cols"})
    image_selected_cols: Optional[str] = field(default=None, metadata={"help": "pure image data selected cols"})
    detection_selected_cols: Optional[str] = field(default=None, metadata={"help": "detection data selected cols"})
    neg_sample_dir: Optional[str] = field(
        default=None,
        metadata={"help": "negative sample directory, which contains captions (taken from all image-text pairs), "
                          "answers (taken from VQA), objects (taken form OpenImages): all_captions.txt, object.txt, "
                          "type2ans.json"},
    )
    code_image_size: int = field(
        default=128, metadata={"help": "the resolution of the generated image in the image infilling task"})
    pretrain_seed: int = field(default=7, metadata={"help": "pretrain seed"})
    mask_ratio: float = field(default=0.3, metadata={"help": "fraction of words/subwords that will be masked"})
    random_ratio: float = field(default=0.0, metadata={"help": "instead of using [MASK], use random token this often"})
    keep_ratio: float = field(
        default=0.0, metadata={"help": "instead of using [MASK], keep original token this often (accepted for "
                                       "compatibility; unused, as in the original)"})
    mask_length: str = field(
        default="span-poisson", metadata={"help": "mask length to choose ['subword', 'word', 'span-poisson']"})
    poisson_lambda: float = field(
        default=3.0, metadata={"help": "mean span length of span-poisson masking (lambda of the Poisson law)"})
    replace_length: int = field(
        default=1, metadata={"help": "when masking N tokens, replace with 0, 1, or N tokens (use -1 for N)"})


def read_negative_samples(folder: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """(captions, objects, type2ans) of ``--neg-sample-dir``, the original's three files."""
    if not folder:
        raise ValueError("--neg-sample-dir is required for training unify_task (a folder with "
                         f"{', '.join(NEGATIVE_SAMPLE_FILES)}, the negatives of image-text matching)")
    for name in NEGATIVE_SAMPLE_FILES:
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"--neg-sample-dir {folder}: {name} not found")

    def lines(name: str) -> list[str]:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]

    path = os.path.join(folder, "type2ans.json")
    with open(path, encoding="utf-8") as f:
        try:
            type2ans = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(type2ans, dict) or not all(isinstance(v, list) for v in type2ans.values()):
        raise ValueError(f"{path}: expected a JSON object of answer lists, {{type: [answer, ...]}}")
    return lines("all_captions.txt"), lines("object.txt"), type2ans


@register_task("unify_task", dataclass=UnifyConfig)
class UnifyTask(OFATask):
    """Pretraining: image-text pairs from ``data``, side streams from ``--text/--image/--detection-data``."""

    dataset_cls = UnifyDataset

    def __init__(self, cfg: UnifyConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self._side_streams = None
        self._negative_samples = None

    def data_path(self, split: str, epoch: int = 1) -> str:
        """Epoch k reads the k-th of the comma-separated files (round-robin) for every split, as the original
        (pretraining runs with ``--disable-validation``)."""
        if not self.cfg.data:
            raise ValueError("--data is not set (comma-separated vision-language TSV files)")
        paths = self.cfg.data.split(",")
        return paths[(epoch - 1) % len(paths)]

    def side_streams(self) -> dict:
        """The text, image and detection readers (opened once, each sliced across ranks like ``data``)."""
        if self._side_streams is None:
            streams = {}
            for name, path, cols in (
                ("pure_text_dataset", self.cfg.text_data, self.cfg.text_selected_cols),
                ("pure_image_dataset", self.cfg.image_data, self.cfg.image_selected_cols),
                ("detection_dataset", self.cfg.detection_data, self.cfg.detection_selected_cols),
            ):
                streams[name] = FileDataset(path, cols) if path else None
            self._side_streams = streams
        return self._side_streams

    def dataset_kwargs(self, split: str) -> dict:
        kwargs = super().dataset_kwargs(split)
        if split == "train":
            if self._negative_samples is None:
                self._negative_samples = read_negative_samples(self.cfg.neg_sample_dir)
            captions, objects, type2ans = self._negative_samples
            kwargs.update(all_caption_list=captions, all_object_list=objects, type2ans_dict=type2ans,
                          **self.side_streams())
        kwargs.update(
            seed=self.cfg.pretrain_seed,
            code_image_size=self.cfg.code_image_size,
            max_image_size=self.cfg.max_image_size,
            mask_ratio=self.cfg.mask_ratio,
            random_ratio=self.cfg.random_ratio,
            mask_length=self.cfg.mask_length,
            poisson_lambda=self.cfg.poisson_lambda,
            replace_length=self.cfg.replace_length,
        )
        return kwargs
