#!/usr/bin/env bash
# OFA-Base variant of pretrain_ofa_large.sh (original: run_scripts/pretraining/pretrain_ofa_base.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1052}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

ARCH="${ARCH:-ofa_base}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_base.pt}"
source "$SCRIPT_DIR/pretrain_ofa_large.sh"
