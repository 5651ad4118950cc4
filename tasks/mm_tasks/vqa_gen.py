"""The ``vqa_gen`` task: its options and dataset."""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.mm_data.vqa_gen_dataset import VqaGenDataset
from tasks.ofa_task import CandidateAnswerConfig, OFAConfig, OFATask, PromptConfig

VAL_INFERENCE_TYPES = ("allcand", "beamsearch")


@dataclass
class VqaGenConfig(OFAConfig, CandidateAnswerConfig, PromptConfig):
    max_object_length: int = field(default=30, metadata={"help": "the maximum object sequence length"})
    unconstrained_training: bool = field(
        default=False,
        metadata={"help": "do not use Trie to constrain loss into the closed candidate answer set, default to False. "
                          "If set to True, then open-ended training is facilitated, ans2label_file and "
                          "ans2label_dict will not be used and inference type must be beamsearch"},
    )
    add_object: bool = field(default=False, metadata={"help": "add object to encoder"})
    uses_ema: Optional[bool] = field(default=False, metadata={"help": "whether to use ema"})
    val_inference_type: Optional[str] = field(
        default="allcand",
        metadata={"help": "inference type in validation (allcand or beamsearch), default to allcand"},
    )
    eval_args: Optional[str] = field(
        default='{"beam":5,"unnormalized":true,"temperature":1.0}',
        metadata={"help": "generation args as JSON string for inference, only activated when "
                          "--val-inference-type=beamsearch"},
    )


@register_task("vqa_gen", dataclass=VqaGenConfig)
class VqaGenTask(OFATask):
    """VQA as generation; answers constrained to ``ans2label`` unless ``--unconstrained-training``."""

    valid_metric = "vqa_score"

    dataset_cls = VqaGenDataset

    def __init__(self, cfg: VqaGenConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if cfg.val_inference_type not in VAL_INFERENCE_TYPES:
            raise ValueError(f"Unknown inference type encountered: {cfg.val_inference_type}, "
                             f"should be allcand or beamsearch.")
        if cfg.unconstrained_training and cfg.val_inference_type != "beamsearch":
            raise ValueError("For open-ended training, there is no fixed candidate answer set, "
                             "then inference type must be beamsearch")
        self.uses_ema = cfg.uses_ema
        if not cfg.unconstrained_training:
            self.ans2label_dict = self.load_ans2label()
            self.build_constraint_trie(self.ans2label_dict.keys())

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "max_object_length": self.cfg.max_object_length,
                "add_object": self.cfg.add_object, "constraint_trie": self.constraint_trie,
                "prompt_type": self.cfg.prompt_type}

    @property
    def generates_at_validation(self):
        return self.cfg.val_inference_type == "beamsearch"

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if self.cfg.val_inference_type == "allcand":
            self.build_candidate_batches()
        return model
