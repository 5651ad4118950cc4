"""The GLUE tasks: text classification answered with one constrained word."""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.nlu_data import glue_dataset
from tasks.ofa_task import OFAConfig, OFATask, PromptConfig


@dataclass
class GlueConfig(OFAConfig, PromptConfig):
    ans2label_dict: Optional[str] = field(default='{"no": 0, "yes": 1}', metadata={"help": "answer to label dict"})


class GlueTask(OFATask):
    """Answers are constrained to ``ans2label_dict``; the decoder predicts the word right after its prompt."""

    def __init__(self, cfg: GlueConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.ans2label_dict = self.load_ans2label()
        self.build_constraint_trie(self.ans2label_dict.keys())

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "constraint_trie": self.constraint_trie,
                "prompt_type": self.cfg.prompt_type}


@register_task("cola", dataclass=GlueConfig)
class COLATask(GlueTask):
    dataset_cls = glue_dataset.COLADataset


@dataclass
class MNLIConfig(GlueConfig):
    ans2label_dict: Optional[str] = field(
        default='{"maybe": 0, "yes": 1, "no": 2}', metadata={"help": "answer to label dict"}
    )


@register_task("mnli", dataclass=MNLIConfig)
class MNLITask(GlueTask):
    dataset_cls = glue_dataset.MNLIDataset


@register_task("mrpc", dataclass=GlueConfig)
class MRPCTask(GlueTask):
    dataset_cls = glue_dataset.MRPCDataset


@register_task("qnli", dataclass=GlueConfig)
class QNLITask(GlueTask):
    dataset_cls = glue_dataset.QNLIDataset


@register_task("qqp", dataclass=GlueConfig)
class QQPTask(GlueTask):
    dataset_cls = glue_dataset.QQPDataset


@register_task("rte", dataclass=GlueConfig)
class RTETask(GlueTask):
    dataset_cls = glue_dataset.RTEDataset


@dataclass
class SST2Config(GlueConfig):
    ans2label_dict: Optional[str] = field(
        default='{"negative": 0, "positive": 1}', metadata={"help": "answer to label dict"}
    )


@register_task("sst2", dataclass=SST2Config)
class SST2Task(GlueTask):
    dataset_cls = glue_dataset.SST2Dataset
