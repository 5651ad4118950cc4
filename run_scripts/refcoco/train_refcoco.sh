#!/usr/bin/env bash
# Visual grounding: finetune OFA-Large on RefCOCO (REFCOCO_DATASET=refcoco|refcocoplus|refcocog picks the data), with
# the values of the original run_scripts/refcoco/train_refcoco.sh. train_refcocoplus.sh, train_refcocog.sh and the
# _base, _el, _prefix, _adapter and _bitfit scripts are variants of it.
# Usage (from the repo root or run_scripts/refcoco): bash train_refcoco.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_refcoco() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=6051 REFCOCO_DATASET=refcoco LOG_DIR={REFCOCO_DATASET}_logs \
        SAVE_DIR={REFCOCO_DATASET}_checkpoints DATA_DIR={DATASET_ROOT}/{REFCOCO_DATASET}_data \
        DATA={DATA_DIR}/{REFCOCO_DATASET}_train.tsv,{DATA_DIR}/{REFCOCO_DATASET}_val.tsv \
        RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt --selected-cols=0,4,2,3 --task=refcoco --arch=ofa_large \
        --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.1 --warmup-ratio=0.06 \
        --batch-size=4 --update-freq=8 --encoder-drop-path-rate=0.2 --decoder-drop-path-rate=0.2 --dropout=0.1 \
        --max-src-length=80 --max-tgt-length=20 GRID="MAX_EPOCH LR PATCH_IMAGE_SIZE" --max-epoch=10 --lr=3e-5 \
        --patch-image-size=512 --no-epoch-checkpoints --keep-best-checkpoints=1 --save-interval=1 \
        --validate-interval=1 --save-interval-updates=500 --validate-interval-updates=500 \
        --eval-acc '--eval-args={"beam":5,"min_len":4,"max_len_a":0,"max_len_b":4}' \
        --best-checkpoint-metric=score --maximize-best-checkpoint-metric --find-unused-parameters "$@"
}
ofa_main train_refcoco -- "$@"
