#!/usr/bin/env bash
# Chinese captions (MUGE) with an OFA-CN captioning checkpoint, beam 8; the flags of the original
# run_scripts/caption/generate_caption_cn.sh (which ships no scorer for them). Writes RESULTS_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/caption): bash generate_caption_cn.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

generate_caption_cn() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=1081 DATA_DIR={DATASET_ROOT}/muge_caption_data DATA={DATA_DIR}/caption_test.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/caption_cn_large.pt SPLIT=test LOG=generate_caption_cn_{SPLIT} FP16= \
        BPE_DIR={OFA_ROOT}/utils/BERT_CN_dict SELECTED_COLS=1,4,2 EVAL_CIDER=False \
        MODEL_OVERRIDES="DATA BPE_DIR EVAL_CIDER SELECTED_COLS" --task=caption --batch-size=16 --gen-subset={SPLIT} \
        --results-path={RESULTS_ROOT}/caption --beam=8 --max-len-b=128 --no-repeat-ngram-size=3 "$@"
}
ofa_main generate_caption_cn -- "$@"
