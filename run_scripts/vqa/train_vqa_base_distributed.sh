#!/usr/bin/env bash
# OFA-Base variant of train_vqa_distributed.sh (original: run_scripts/vqa/train_vqa_base_distributed.sh):
# 15 epochs with warmup ratio 0.04 instead of 40k updates, drop-path 0.1.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8314}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

ARCH="${ARCH:-ofa_base}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_base.pt}"
SCHEDULE="${SCHEDULE:-epochs}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
source "$SCRIPT_DIR/train_vqa_distributed.sh"
