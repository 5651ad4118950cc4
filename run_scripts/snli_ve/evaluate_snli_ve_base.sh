#!/usr/bin/env bash
# OFA-Base variant of evaluate_snli_ve.sh (original: run_scripts/snli_ve/evaluate_snli_ve_base.sh).
# Usage: bash evaluate_snli_ve_base.sh dev|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-7091}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/snli_ve_base_best.pt}"
source "$SCRIPT_DIR/evaluate_snli_ve.sh"
