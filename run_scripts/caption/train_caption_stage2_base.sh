#!/usr/bin/env bash
# OFA-Base variant of train_caption_stage2.sh (original: run_scripts/caption/train_caption_stage2_base.sh):
# ofa_base from caption_stage1_base_best.pt, no --end-learning-rate (polynomial decay to 0); port 1062.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_caption_stage2.sh"

ofa_main train_caption_stage2 MASTER_PORT=1062 --arch=ofa_base \
    RESTORE_FILE={CHECKPOINT_ROOT}/caption_stage1_base_best.pt --end-learning-rate= -- "$@"
