#!/usr/bin/env bash
# OFA-Base variant of evaluate_vqa_allcand.sh (original: run_scripts/vqa/evaluate_vqa_base_allcand.sh).
# Usage: bash evaluate_vqa_base_allcand.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/vqa_base_best.pt}"
source "$SCRIPT_DIR/evaluate_vqa_allcand.sh"
