#!/usr/bin/env bash
# OFA-Huge variant of evaluate_caption.sh (original: run_scripts/caption/evaluate_caption_huge.sh): evaluates
# caption_huge_best.pt with beam 10 instead of 5, --temperature 0.98 and --lenpen 0.98; port 1083.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_caption.sh"

ofa_main evaluate_caption MASTER_PORT=1083 CHECKPOINT={CHECKPOINT_ROOT}/caption_huge_best.pt \
    --beam=10 --temperature=0.98 --lenpen=0.98 -- "$@"
