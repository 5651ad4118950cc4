"""Self-critical training of text-to-image generation with the CLIP score as reward (image_gen stage 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Sequence

from fairseq import utils
from fairseq.criterions import register_criterion
from torch import Tensor

from criterions.scst_loss import ScstCriterion, ScstCriterionConfig
from models.text_to_image import CLIP_REWARD_WEIGHT, TextToImageTools, caption_of_source


@dataclass
class ClipScstRewardCriterionConfig(ScstCriterionConfig):
    """The original's options: ``ignore_prefix_size``, ``sentence_avg``, ``constraint_range``."""


@register_criterion("clip_scst_reward_criterion", dataclass=ClipScstRewardCriterionConfig)
class ClipScstRewardCriterion(ScstCriterion):
    """SCST whose reward is 2.5 x the CLIP similarity between each sampled image (its ``<code_i>`` tokens decoded
    by the task's VQGAN) and the sample's caption; the baseline is the mean reward of the other samples."""

    CLIP_REWARD_WEIGHT = CLIP_REWARD_WEIGHT

    def candidate_scores(self, sample: Dict[str, Any], candidates: Sequence[Tensor]) -> Tensor:
        tools = TextToImageTools.of_task(self.task).to(sample["target"].device)
        captions = [caption_of_source(self.task, utils.strip_pad(src, self.padding_idx))
                    for src in sample["net_input"]["src_tokens"]]
        images = tools.images_of_hypotheses(candidates)
        return self.CLIP_REWARD_WEIGHT * tools.clip.text_similarity(images, captions)
