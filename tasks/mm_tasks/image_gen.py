"""The ``image_gen`` task: its options, dataset and evaluation (CLIP score of the best sample)."""
import copy
import os
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.images import decode_base64_image
from data.mm_data.image_gen_dataset import ImageGenDataset
from models.text_to_image import TextToImageTools, caption_of_source, save_images
from tasks.evaluation import sample_ids
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
    metric_name = "score"
    metric_generates = True

    def __init__(self, cfg: ImageGenConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if cfg.eval_clip_method not in EVAL_CLIP_METHODS:
            raise ValueError(f"--eval-clip-method must be one of {EVAL_CLIP_METHODS}, got {cfg.eval_clip_method!r}")

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "code_image_size": self.cfg.code_image_size}

    @property
    def scores_at_validation(self):
        """CLIP score of the best sample per caption, when the VQGAN and CLIP weights are given."""
        return bool(self.cfg.vqgan_model_path and self.cfg.clip_model_path)

    def eval_step(self, generator, models, sample, **kwargs):
        """``sampling_times`` rounds of sampled codes per caption, decoded by the VQGAN and ranked by CLIP
        similarity to the caption (``ti_sim``) or to the row's image (``ii_sim``); the score is the best
        similarity. ``gen_images_path`` keeps the images (``all_results/`` ranked, ``top1/`` the best)."""
        tools = TextToImageTools.of_task(self).to(sample["net_input"]["src_tokens"].device)
        rounds = [self.inference_step(generator, models, sample) for _ in range(self.cfg.sampling_times)]
        results, scores = [], []
        for i, sample_id in enumerate(sample_ids(sample)):
            images = tools.images_of_hypotheses([hypo["tokens"] for hypos in rounds for hypo in hypos[i]])
            caption = caption_of_source(self, sample["net_input"]["src_tokens"][i])
            reference = decode_base64_image(sample["code_images"][i]) if self.cfg.eval_clip_method == "ii_sim" else None
            ranked, similarities = tools.rerank(images, caption, reference, method=self.cfg.eval_clip_method)
            if self.cfg.gen_images_path:
                save_images(ranked, caption, os.path.join(self.cfg.gen_images_path, "all_results"))
                save_images(ranked[:1], caption, os.path.join(self.cfg.gen_images_path, "top1"))
            scores.append(similarities.max().item())
            results.append({"sample_id": str(sample_id), "score": scores[-1]})
        return results, scores

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        # image codes are always sampled (the original forces sampling and generates codes)
        args = copy.copy(args)
        args.sampling = True
        return super().build_generator(models, args, seq_gen_cls, {"gen_code": True, **(extra_gen_cls_kwargs or {})},
                                       prefix_allowed_tokens_fn)
