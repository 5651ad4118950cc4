#!/usr/bin/env bash
# OFA-Base RefCOCOg finetuning (original: run_scripts/refcoco/train_refcocog_base.sh): lr 5e-5, 12 epochs, drop-path 0.1.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6062}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

REFCOCO_DATASET="${REFCOCO_DATASET:-refcocog}"
ARCH="${ARCH:-ofa_base}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_base.pt}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
LR="${LR:-5e-5}"
MAX_EPOCH="${MAX_EPOCH:-12}"
source "$SCRIPT_DIR/train_refcoco.sh"
