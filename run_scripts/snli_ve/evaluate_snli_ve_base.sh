#!/usr/bin/env bash
# OFA-Base variant of evaluate_snli_ve.sh (original: run_scripts/snli_ve/evaluate_snli_ve_base.sh): evaluates
# snli_ve_base_best.pt; port 7091. Usage: bash evaluate_snli_ve_base.sh dev|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_snli_ve.sh"

ofa_main evaluate_snli_ve MASTER_PORT=7091 CHECKPOINT={CHECKPOINT_ROOT}/snli_ve_base_best.pt -- "$@"
