#!/usr/bin/env bash
# Evaluate summarization on the Gigaword test set (beam 6, length penalty 0.7), then print ROUGE-1/2/L like the
# original's eval_rouge.py; the flags of the original run_scripts/gigaword/evaluate_gigaword.sh.
# Writes RESULTS_PATH/test_predict.json (and test_metrics.json).
# Usage (from the repo root or run_scripts/gigaword): bash evaluate_gigaword.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_gigaword() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=2081 SPLIT=test DATA={DATASET_ROOT}/gigaword_data/gigaword_{SPLIT}.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/gigaword_large_best.pt LOG=evaluate_gigaword_{SPLIT} SELECTED_COLS=0,1 \
        MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS" --task=gigaword --batch-size=32 --gen-subset={SPLIT} \
        --results-path={RESULTS_ROOT}/gigaword --beam=6 --lenpen=0.7 --max-len-b=32 --no-repeat-ngram-size=3 \
        "$@" || return
    [[ -n "${OFA_DRY_RUN:-}" ]] \
        || python "$OFA_ROOT/run_scripts/gigaword/eval_rouge.py" "${OFA_VALUES[RESULTS_PATH]}/${OFA_VALUES[SPLIT]}_predict.json"
}
ofa_main evaluate_gigaword -- "$@"
