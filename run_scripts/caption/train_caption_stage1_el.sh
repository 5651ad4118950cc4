#!/usr/bin/env bash
# Encouraging-loss variant of train_caption_stage1.sh (original: run_scripts/caption/train_caption_stage1_el.sh):
# criterion adjust_label_smoothed_encouraging_loss with --log-end 0.75, drop-worst ratio 0.05 instead of 0.2,
# runs named <max_epoch>_<warmup_ratio>_<drop_worst_after>_el0.75_.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_caption_stage1.sh"

train_caption_stage1_el() {  # [ITEMS...] [-- train.py flags]
    train_caption_stage1 --criterion=adjust_label_smoothed_encouraging_loss --log-end=0.75 --drop-worst-ratio=0.05 \
        RUN={MAX_EPOCH}_{WARMUP_RATIO}_{DROP_WORST_AFTER}_el{LOG_END}_ "$@"
}
ofa_main train_caption_stage1_el -- "$@"
