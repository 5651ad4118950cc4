#!/usr/bin/env bash
# OFA-OCR base variant of evaluate_ocr.sh (original: run_scripts/ocr/evaluate_ocr_base.sh): evaluates
# ofa_cn_ocr_base.pt, 16 images a batch.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_ocr.sh"

ofa_main evaluate_ocr CHECKPOINT={CHECKPOINT_ROOT}/ofa_cn_ocr_base.pt --batch-size=16 -- "$@"
