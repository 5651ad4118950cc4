#!/usr/bin/env bash
# OFA-Base variant of train_caption_stage1.sh (original: run_scripts/caption/train_caption_stage1_base.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1061}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

ARCH="${ARCH:-ofa_base}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_base.pt}"
MAX_EPOCH="${MAX_EPOCH:-5}"
DROP_WORST_AFTER="${DROP_WORST_AFTER:-6000}"
source "$SCRIPT_DIR/train_caption_stage1.sh"
