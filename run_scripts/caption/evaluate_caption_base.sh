#!/usr/bin/env bash
# OFA-Base variant of evaluate_caption.sh (original: run_scripts/caption/evaluate_caption_base.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1091}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/caption_base_best.pt}"
source "$SCRIPT_DIR/evaluate_caption.sh"
