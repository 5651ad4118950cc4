"""The ``image_gen`` task: its options and dataset."""
import copy
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.mm_data.image_gen_dataset import ImageGenDataset
from tasks.ofa_task import GenerationEvalConfig, OFAConfig, OFATask, ScstConfig

EVAL_CLIP_METHODS = ("ii_sim", "ti_sim")


@dataclass
class ImageGenConfig(OFAConfig, GenerationEvalConfig, ScstConfig):
    sampling_times: int = field(default=1, metadata={"help": "sample times"})
    code_image_size: int = field(default=256, metadata={"help": "code image size"})
    eval_clip_method: str = field(
        default="ti_sim",
        metadata={"help": "evaluation with CLIP scores. ii_sim means Similarity between generated Images and ref "
                          "Images, ti_sim means Similarity between generated Images and input Text"},
    )
    vqgan_model_path: Optional[str] = field(default=None, metadata={"help": "path of vqgan model"})
    vqgan_config_path: Optional[str] = field(default=None, metadata={"help": "path of vqgan config"})
    clip_model_path: Optional[str] = field(default=None, metadata={"help": "clip model path"})
    gen_images_path: str = field(
        default="", metadata={"help": "where to store generated images during evalution. Don't dump images if None. "}
    )


@register_task("image_gen", dataclass=ImageGenConfig)
class ImageGenTask(OFATask):
    """Text-to-image: sample ``<code_i>`` tokens (decoded to pixels by a VQGAN, ranked with CLIP)."""

    dataset_cls = ImageGenDataset

    def __init__(self, cfg: ImageGenConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if cfg.eval_clip_method not in EVAL_CLIP_METHODS:
            raise ValueError(f"--eval-clip-method must be one of {EVAL_CLIP_METHODS}, got {cfg.eval_clip_method!r}")

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "code_dict_size": self.cfg.code_dict_size,
                "code_image_size": self.cfg.code_image_size, "num_bins": self.cfg.num_bins}

    @property
    def generates_at_validation(self):
        return True

    @property
    def valid_metric(self):
        """CLIP score of the best sample per caption, when the VQGAN and CLIP weights are given."""
        return "score" if self.cfg.vqgan_model_path and self.cfg.clip_model_path else None

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        # image codes are always sampled (the original forces sampling and generates codes)
        args = copy.copy(args)
        args.sampling = True
        return super().build_generator(models, args, seq_gen_cls, {"gen_code": True, **(extra_gen_cls_kwargs or {})},
                                       prefix_allowed_tokens_fn)
