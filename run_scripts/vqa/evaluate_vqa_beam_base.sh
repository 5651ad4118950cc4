#!/usr/bin/env bash
# OFA-Base variant of evaluate_vqa_beam.sh (original: run_scripts/vqa/evaluate_vqa_beam_base.sh).
# Usage: bash evaluate_vqa_beam_base.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8182}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/vqa_base_best.pt}"
VALID_BATCH_SIZE="${VALID_BATCH_SIZE:-20}"
source "$SCRIPT_DIR/evaluate_vqa_beam.sh"
