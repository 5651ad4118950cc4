#!/usr/bin/env bash
# Evaluate ImageNet-1K top-1 accuracy on the full val split; the flags of the original
# run_scripts/image_classify/evaluate_imagenet.sh. Writes RESULTS_PATH/val_predict.json.
# Usage (from the repo root or run_scripts/image_classify): bash evaluate_imagenet.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_imagenet() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    ofa_evaluate MASTER_PORT=8087 DATA_DIR={DATASET_ROOT}/imagenet_1k_data DATA={DATA_DIR}/imagenet_1k_val.tsv \
        ANS2LABEL_FILE={DATA_DIR}/class2label_new.pkl "NEED:ANS2LABEL_FILE=class set" SELECTED_COLS=0,2 \
        MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS ANS2LABEL_FILE" CHECKPOINT={CHECKPOINT_ROOT}/imagenet_1k_large_best.pt \
        LOG=evaluate_imagenet_val --task=image_classify --batch-size=8 --gen-subset=val \
        --results-path={RESULTS_ROOT}/imagenet_1k_val "$@"
}
ofa_main evaluate_imagenet -- "$@"
