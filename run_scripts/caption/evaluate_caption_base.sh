#!/usr/bin/env bash
# OFA-Base variant of evaluate_caption.sh (original: run_scripts/caption/evaluate_caption_base.sh): evaluates
# caption_base_best.pt.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_caption.sh"

ofa_main evaluate_caption CHECKPOINT={CHECKPOINT_ROOT}/caption_base_best.pt -- "$@"
