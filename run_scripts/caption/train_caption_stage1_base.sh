#!/usr/bin/env bash
# OFA-Base variant of train_caption_stage1.sh (original: run_scripts/caption/train_caption_stage1_base.sh):
# ofa_base from ofa_base.pt, 5 epochs instead of 2, drop-worst after 6000 updates instead of 2500; port 1061.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_caption_stage1.sh"

ofa_main train_caption_stage1 MASTER_PORT=1061 --arch=ofa_base RESTORE_FILE={CHECKPOINT_ROOT}/ofa_base.pt \
    --max-epoch=5 --drop-worst-after=6000 -- "$@"
