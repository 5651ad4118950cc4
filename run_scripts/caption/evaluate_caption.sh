#!/usr/bin/env bash
# Evaluate a finetuned captioning checkpoint on the COCO Karpathy test split (beam 5), then score it with the COCO
# toolkit; the flags of the original run_scripts/caption/evaluate_caption.sh. Writes RESULTS_PATH/<split>_predict.json.
# The _base and _huge scripts are variants of it.
# Usage (from the repo root or run_scripts/caption): bash evaluate_caption.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_caption() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=1091 DATA_DIR={DATASET_ROOT}/caption_data DATA={DATA_DIR}/caption_test.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/caption_large_best_clean.pt SPLIT=test LOG=evaluate_caption_{SPLIT} \
        --task=caption --batch-size=16 --gen-subset={SPLIT} --results-path={RESULTS_ROOT}/caption \
        --beam=5 --max-len-b=16 --no-repeat-ngram-size=3 --temperature= --lenpen= \
        SELECTED_COLS=1,4,2 EVAL_CIDER=False MODEL_OVERRIDES="DATA BPE_DIR EVAL_CIDER SELECTED_COLS" \
        COCO_REFERENCES={DATA_DIR}/{SPLIT}_caption_coco_format.json "$@" || return
    [[ -z "${OFA_DRY_RUN:-}" ]] || return 0
    # BLEU, METEOR, ROUGE-L and CIDEr with the official toolkit, like the original
    local predictions="${OFA_VALUES[RESULTS_PATH]}/${OFA_VALUES[SPLIT]}_predict.json"
    if [[ -f "${OFA_VALUES[COCO_REFERENCES]}" ]]; then
        python "$OFA_ROOT/run_scripts/caption/coco_eval.py" "$predictions" "${OFA_VALUES[COCO_REFERENCES]}"
    else
        echo "skipping coco_eval.py (no COCO_REFERENCES at ${OFA_VALUES[COCO_REFERENCES]}); metrics: ${predictions%_predict.json}_metrics.json"
    fi
}
ofa_main evaluate_caption -- "$@"
