"""Importing ``criterions`` registers every OFA criterion with fairseq."""
from criterions.clip_scst_loss import ClipScstRewardCriterion  # noqa: F401
from criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyCriterion  # noqa: F401
from criterions.label_smoothed_encouraging_loss import AdjustLabelSmoothedEncouragingLossCriterion  # noqa: F401
from criterions.scst_loss import ScstCriterion, ScstRewardCriterion  # noqa: F401
