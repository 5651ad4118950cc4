#!/usr/bin/env bash
# OFA-OCR base variant of evaluate_ocr.sh (original: run_scripts/ocr/evaluate_ocr_base.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1091}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/ofa_cn_ocr_base.pt}"
BATCH_SIZE="${BATCH_SIZE:-16}"
source "$SCRIPT_DIR/evaluate_ocr.sh"
