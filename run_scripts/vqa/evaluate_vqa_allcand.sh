#!/usr/bin/env bash
# VQA inference scoring every candidate answer with the EMA weights: the paper's numbers, but much slower than beam
# search. The flags of the original run_scripts/vqa/evaluate_vqa_allcand.sh; for several nodes set NNODES, NODE_RANK,
# MASTER_ADDR (or use evaluate_vqa_allcand_distributed.sh). Writes RESULTS_PATH/<split>_predict.json.
# evaluate_vqa_beam.sh and the _base/_distributed scripts are variants of it.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_allcand.sh val|test [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_vqa_allcand() {  # [ITEMS...] [-- SPLIT evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=8081 ARGS=SPLIT SPLIT=val INFERENCE=allcand DATA_DIR={DATASET_ROOT}/vqa_data \
        DATA={DATA_DIR}/vqa_{SPLIT}.tsv CHECKPOINT={CHECKPOINT_ROOT}/vqa_large_best.pt LOG=evaluate_vqa_{SPLIT}_{INFERENCE} \
        ANS2LABEL_FILE={DATA_DIR}/trainval_ans2label.pkl "NEED:ANS2LABEL_FILE=answer set" SELECTED_COLS=0,5,2,3,4 \
        MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS ANS2LABEL_FILE" --valid-batch-size= \
        --task=vqa_gen --batch-size=8 --gen-subset={SPLIT} --results-path={RESULTS_ROOT}/vqa_{SPLIT}_{INFERENCE} \
        --ema-eval "$@"
}
ofa_main evaluate_vqa_allcand -- "$@"
