#!/usr/bin/env bash
# OFA-Base variant of evaluate_vqa_allcand_distributed.sh (original:
# run_scripts/vqa/evaluate_vqa_base_allcand_distributed.sh): evaluates vqa_base_best.pt; port 8316.
# Usage: bash evaluate_vqa_base_allcand_distributed.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_vqa_allcand_distributed.sh"

ofa_main evaluate_vqa_allcand_distributed MASTER_PORT=8316 CHECKPOINT={CHECKPOINT_ROOT}/vqa_base_best.pt -- "$@"
