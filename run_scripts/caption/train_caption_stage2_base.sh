#!/usr/bin/env bash
# OFA-Base variant of train_caption_stage2.sh (original: run_scripts/caption/train_caption_stage2_base.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1062}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

ARCH="${ARCH:-ofa_base}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/caption_stage1_base_best.pt}"
END_LEARNING_RATE="${END_LEARNING_RATE-}"
source "$SCRIPT_DIR/train_caption_stage2.sh"
