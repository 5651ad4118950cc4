#!/usr/bin/env bash
# OFA-Huge variant of evaluate_caption.sh (original: run_scripts/caption/evaluate_caption_huge.sh):
# caption_huge_best.pt, beam 10, --temperature 0.98, --lenpen 0.98.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1083}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/caption_huge_best.pt}"
BEAM="${BEAM:-10}"
TEMPERATURE="${TEMPERATURE:-0.98}"
LENPEN="${LENPEN:-0.98}"
source "$SCRIPT_DIR/evaluate_caption.sh"
