#!/usr/bin/env bash
# Drop-best variant of train_caption_stage1_el.sh (original: run_scripts/caption/train_caption_stage1_el_db.sh):
# adds --drop-best-ratio 0.05 --drop-best-after 2500; runs named <max_epoch>_<warmup_ratio>_dwdb<drop_worst_after>_el0.75_.
# The original's criterion accepts --drop-best-ratio/--drop-best-after but never applies them, so its runs trained on
# every token; ours drops the best 5% of tokens after 2500 updates (DROP_BEST_RATIO= matches the original).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_caption_stage1_el.sh"

ofa_main train_caption_stage1_el --drop-best-ratio=0.05 --drop-best-after=2500 \
    RUN={MAX_EPOCH}_{WARMUP_RATIO}_dwdb{DROP_WORST_AFTER}_el{LOG_END}_ -- "$@"
