#!/usr/bin/env bash
# OFA-Base variant of evaluate_vqa_allcand.sh (original: run_scripts/vqa/evaluate_vqa_base_allcand.sh): evaluates
# vqa_base_best.pt. Usage: bash evaluate_vqa_base_allcand.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_vqa_allcand.sh"

ofa_main evaluate_vqa_allcand CHECKPOINT={CHECKPOINT_ROOT}/vqa_base_best.pt -- "$@"
