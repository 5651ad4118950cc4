#!/usr/bin/env bash
# Evaluate OFA-OCR (Chinese scene-text recognition, ModelScope's ofa_cn_ocr_large) with beam 5: exact-match accuracy
# after removing spaces; the flags of the original run_scripts/ocr/evaluate_ocr.sh, but with the BERT vocabulary
# (the original points bpe_dir at utils/BPE, which has no vocab.txt). The _base script is a variant of it.
# Writes RESULTS_PATH/<split>_predict.json and <split>_metrics.json.
# Usage (from the repo root or run_scripts/ocr): bash evaluate_ocr.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_ocr() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=1091 DATA_DIR={DATASET_ROOT}/caption_data DATA={DATA_DIR}/ocr_scene_test.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/ofa_cn_ocr_large.pt SPLIT=test LOG=evaluate_ocr_{SPLIT} \
        BPE_DIR={OFA_ROOT}/utils/BERT_CN_dict SELECTED_COLS=0,1,2 RESNET_MODEL_PATH=None \
        MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS RESNET_MODEL_PATH" --task=ocr --batch-size=8 \
        --gen-subset={SPLIT} --results-path={RESULTS_ROOT}/ocr --beam=5 --max-len-b=64 --no-repeat-ngram-size=0 "$@"
}
ofa_main evaluate_ocr -- "$@"
