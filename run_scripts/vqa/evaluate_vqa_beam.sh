#!/usr/bin/env bash
# Beam-search variant of evaluate_vqa_allcand.sh (original: run_scripts/vqa/evaluate_vqa_beam.sh): beam 5 over the
# answer trie (--beam-search-vqa-eval, unnormalized scores, temperature 1.0), batch size 16 instead of 8, results in
# RESULTS_ROOT/vqa_<split>_beam; port 8082. evaluate_vqa_beam_base.sh and evaluate_vqa_unconstrained.sh are variants.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_beam.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_vqa_allcand.sh"

evaluate_vqa_beam() {  # [ITEMS...] [-- SPLIT evaluate.py flags]
    evaluate_vqa_allcand MASTER_PORT=8082 INFERENCE=beam --batch-size=16 \
        --beam-search-vqa-eval --beam=5 --unnormalized --temperature=1.0 "$@"
}
ofa_main evaluate_vqa_beam -- "$@"
