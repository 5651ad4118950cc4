#!/usr/bin/env bash
# OFA-Base variant of train_vqa_distributed.sh (original: run_scripts/vqa/train_vqa_base_distributed.sh): ofa_base
# from ofa_base.pt, 15 epochs with warmup ratio 0.04 instead of 40k updates with 1000 warmup updates, drop-path 0.1
# instead of 0.2; runs named <max_epoch>_<warmup_ratio>_<lr>_<patch_image_size>; port 8314.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_vqa_distributed.sh"

ofa_main train_vqa_distributed MASTER_PORT=8314 --arch=ofa_base RESTORE_FILE={CHECKPOINT_ROOT}/ofa_base.pt \
    TOTAL_NUM_UPDATES= --warmup-updates= --max-epoch=15 --warmup-ratio=0.04 \
    GRID="MAX_EPOCH WARMUP_RATIO LR PATCH_IMAGE_SIZE" --encoder-drop-path-rate=0.1 --decoder-drop-path-rate=0.1 -- "$@"
