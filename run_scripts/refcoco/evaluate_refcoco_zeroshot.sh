#!/usr/bin/env bash
# Zero-shot visual grounding: the pretrained OFA-Large checkpoint on RefCOCO val, the task built from the command line
# (--zero-shot); the flags of the original run_scripts/refcoco/evaluate_refcoco_zeroshot.sh. Other splits:
# SPLIT=refcocog_test DATA=dataset/refcocog_data/refcocog_test.tsv. Writes RESULTS_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/refcoco): bash evaluate_refcoco_zeroshot.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_refcoco_zeroshot() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=6081 SPLIT=refcoco_val DATA={DATASET_ROOT}/refcoco_data/{SPLIT}.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/ofa_large.pt LOG=evaluate_{SPLIT}_zeroshot --zero-shot --task=refcoco \
        --bpe-dir={OFA_ROOT}/utils/BPE --selected-cols=0,4,2,3 --patch-image-size=480 --batch-size=16 \
        --gen-subset={SPLIT} --results-path={RESULTS_ROOT}/refcoco --beam=5 --min-len=4 --max-len-a=0 --max-len-b=4 \
        --no-repeat-ngram-size=3 "$@"
}
ofa_main evaluate_refcoco_zeroshot -- "$@"
