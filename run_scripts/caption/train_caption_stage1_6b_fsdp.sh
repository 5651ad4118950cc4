#!/usr/bin/env bash
# OFA-6B variant of train_caption_stage1_huge_fsdp.sh: --arch ofa_6b from ModelScope's 6B weights converted with
# utils/convert_checkpoint.py to-fairseq (ofa_6b.pt), 4 sentences per GPU x 8 accumulated. README: memory per GPU.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1053}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

ARCH="${ARCH:-ofa_6b}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_6b.pt}"
BATCH_SIZE="${BATCH_SIZE:-4}"
UPDATE_FREQ="${UPDATE_FREQ:-8}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/stage1_6b_fsdp_checkpoints}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/stage1_6b_fsdp_logs}"
source "$SCRIPT_DIR/train_caption_stage1_huge_fsdp.sh"
