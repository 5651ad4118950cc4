"""The ``refcoco`` task: its options and dataset."""
from dataclasses import dataclass, field

from fairseq.tasks import register_task

from data.mm_data.refcoco_dataset import RefcocoDataset
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask, ScstConfig


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
    """Visual grounding (RefCOCO/+/g): the box as four location tokens; accuracy@0.5 with --eval-acc."""

    dataset_cls = RefcocoDataset

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "num_bins": self.cfg.num_bins,
                "max_image_size": self.cfg.max_image_size, "train_box_augment": self.cfg.train_box_augment}

    @property
    def generates_at_validation(self):
        return self.cfg.eval_acc

    @property
    def valid_metric(self):
        return "score" if self.cfg.eval_acc else None
