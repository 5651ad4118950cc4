#!/usr/bin/env bash
# Evaluate visual grounding on RefCOCO (val, testA, testB), RefCOCO+ (val, testA, testB) and RefCOCOg (val, test),
# each with its own finetuned checkpoint <dataset>_<MODEL_SIZE>_best.pt; the flags of the original
# run_scripts/refcoco/evaluate_refcoco.sh. EVAL_SETS picks dataset:split pairs, e.g. EVAL_SETS="refcoco:val
# refcocog:test" (DATA and CHECKPOINT can only be set for one). Writes RESULTS_ROOT/<dataset>/<dataset>_<split>_predict.json.
# evaluate_refcoco_base.sh is a variant of it.
# Usage (from the repo root or run_scripts/refcoco): bash evaluate_refcoco.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_refcoco() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    local eval_set status=0
    local -a sets=(${EVAL_SETS:-refcoco:val refcoco:testA refcoco:testB refcocoplus:val refcocoplus:testA
                   refcocoplus:testB refcocog:val refcocog:test})
    (( ${#sets[@]} == 1 )) || [[ -z "${DATA:-}${CHECKPOINT:-}" ]] \
        || ofa_die "DATA and CHECKPOINT name one data set: set EVAL_SETS to one dataset:split too"
    for eval_set in "${sets[@]}"; do
        _evaluate_refcoco_set "${eval_set%%:*}" "${eval_set#*:}" "$@" || status=1  # a dry run lists every set
    done
    return "$status"
}

_evaluate_refcoco_set() {  # DATASET SPLIT [ITEMS...] [-- evaluate.py flags]
    local -a args=("$1" "$2") items=()
    shift 2
    while (( $# )) && [[ "$1" != -- ]]; do
        items+=("$1")
        shift
    done
    (( $# == 0 )) || shift
    ofa_evaluate MASTER_PORT=6091 ARGS="EVAL_DATASET EVAL_SPLIT" MODEL_SIZE=large \
        DATA={DATASET_ROOT}/{EVAL_DATASET}_data/{EVAL_DATASET}_{EVAL_SPLIT}.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/{EVAL_DATASET}_{MODEL_SIZE}_best.pt LOG=evaluate_{EVAL_DATASET}_{EVAL_SPLIT} \
        SELECTED_COLS=0,4,2,3 MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS" --task=refcoco --batch-size=16 \
        --gen-subset={EVAL_DATASET}_{EVAL_SPLIT} --results-path={RESULTS_ROOT}/{EVAL_DATASET} --beam=5 --min-len=4 \
        --max-len-a=0 --max-len-b=4 --no-repeat-ngram-size=3 "${items[@]}" -- "${args[@]}" "$@"
}
ofa_main evaluate_refcoco -- "$@"
