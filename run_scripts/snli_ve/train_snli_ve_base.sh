#!/usr/bin/env bash
# OFA-Base variant of train_snli_ve.sh (original: run_scripts/snli_ve/train_snli_ve_base.sh): 5 epochs, lr 5e-5, drop-path 0.1.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-7061}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

ARCH="${ARCH:-ofa_base}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_base.pt}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
MAX_EPOCH="${MAX_EPOCH:-5}"
LR="${LR:-5e-5}"
source "$SCRIPT_DIR/train_snli_ve.sh"
