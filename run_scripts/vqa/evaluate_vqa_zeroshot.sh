#!/usr/bin/env bash
# Zero-shot open-ended VQA: the pretrained OFA-Large checkpoint, the task built from the command line (--zero-shot),
# beam 20 without an answer set or question prefix; the flags of the original run_scripts/vqa/evaluate_vqa_zeroshot.sh.
# Writes RESULTS_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_zeroshot.sh val|test [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_vqa_zeroshot() {  # [ITEMS...] [-- SPLIT evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=8082 ARGS=SPLIT SPLIT=val DATA={DATASET_ROOT}/vqa_data/vqa_{SPLIT}.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/ofa_large.pt LOG=evaluate_vqa_{SPLIT}_zeroshot --zero-shot --task=vqa_gen \
        --bpe-dir={OFA_ROOT}/utils/BPE --selected-cols=0,5,2,3,4 --patch-image-size=480 --prompt-type=none \
        --batch-size=8 --gen-subset={SPLIT} --results-path={RESULTS_ROOT}/vqa_{SPLIT}_zeroshot \
        --beam=20 --unnormalized --temperature=1.0 "$@"
}
ofa_main evaluate_vqa_zeroshot -- "$@"
