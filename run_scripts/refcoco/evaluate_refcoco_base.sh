#!/usr/bin/env bash
# OFA-Base variant of evaluate_refcoco.sh (original: run_scripts/refcoco/evaluate_refcoco_base.sh): evaluates the
# <dataset>_base_best.pt checkpoints.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_refcoco.sh"

ofa_main evaluate_refcoco MODEL_SIZE=base -- "$@"
