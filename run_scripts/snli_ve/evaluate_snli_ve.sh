#!/usr/bin/env bash
# Evaluate visual entailment accuracy on SNLI-VE dev or test; the flags of the original
# run_scripts/snli_ve/evaluate_snli_ve.sh. Writes RESULTS_PATH/<split>_predict.json. evaluate_snli_ve_base.sh is a
# variant of it.
# Usage (from the repo root or run_scripts/snli_ve): bash evaluate_snli_ve.sh dev|test [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_snli_ve() {  # [ITEMS...] [-- SPLIT evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=7081 ARGS=SPLIT SPLIT=dev DATA={DATASET_ROOT}/snli_ve_data/snli_ve_{SPLIT}.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/snli_ve_large_best.pt LOG=evaluate_snli_ve_{SPLIT} SELECTED_COLS=0,2,3,4,5 \
        MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS" --task=snli_ve --batch-size=8 --gen-subset={SPLIT} \
        --results-path={RESULTS_ROOT}/snli_ve "$@"
}
ofa_main evaluate_snli_ve -- "$@"
