"""Label-smoothed encouraging loss (Zhao et al. 2022): the label-smoothed CE plus a ``log(1 - p)`` bonus."""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from criterions.label_smoothed_cross_entropy import (
    AdjustLabelSmoothedCrossEntropyCriterion,
    AdjustLabelSmoothedCrossEntropyCriterionConfig,
)


@dataclass
class AdjustLabelSmoothedEncouragingLossConfig(AdjustLabelSmoothedCrossEntropyCriterionConfig):
    log_end: float = field(
        default=0.75,
        metadata={"help": "probability above which the log(1-p) bonus turns linear; higher suits stronger models "
                          "(0.75 or 0.5 are good first tries, 1 keeps the plain log)"},
    )
    drop_best_ratio: float = field(
        default=0.0, metadata={"help": "fraction of lowest-loss target tokens dropped from each batch"}
    )
    drop_best_after: int = field(
        default=0, metadata={"help": "drop the best tokens only after this many updates"}
    )


@register_criterion("adjust_label_smoothed_encouraging_loss", dataclass=AdjustLabelSmoothedEncouragingLossConfig)
class AdjustLabelSmoothedEncouragingLossCriterion(AdjustLabelSmoothedCrossEntropyCriterion):
    """The adjusted label-smoothed CE with the encouraging-loss bonus on the kept tokens."""

    def __init__(
        self,
        task,
        sentence_avg,
        label_smoothing,
        ignore_prefix_size=0,
        ignore_eos=False,
        report_accuracy=False,
        drop_worst_ratio=0.0,
        drop_worst_after=0,
        use_rdrop=False,
        reg_alpha=1.0,
        sample_patch_num=196,
        constraint_range=None,
        log_end=0.75,
        drop_best_ratio=0.0,
        drop_best_after=0,
    ):
        super().__init__(
            task,
            sentence_avg,
            label_smoothing,
            ignore_prefix_size=ignore_prefix_size,
            ignore_eos=ignore_eos,
            report_accuracy=report_accuracy,
            drop_worst_ratio=drop_worst_ratio,
            drop_worst_after=drop_worst_after,
            use_rdrop=use_rdrop,
            reg_alpha=reg_alpha,
            sample_patch_num=sample_patch_num,
            constraint_range=constraint_range,
        )
        self.log_end = log_end
        self.drop_best_ratio = drop_best_ratio
        self.drop_best_after = drop_best_after
