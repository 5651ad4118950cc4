#!/usr/bin/env bash
# OFA-Base RefCOCO+ finetuning (original: run_scripts/refcoco/train_refcocoplus_base.sh): lr 5e-5, drop-path 0.1.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6063}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

REFCOCO_DATASET="${REFCOCO_DATASET:-refcocoplus}"
ARCH="${ARCH:-ofa_base}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_base.pt}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
LR="${LR:-5e-5}"
source "$SCRIPT_DIR/train_refcoco.sh"
