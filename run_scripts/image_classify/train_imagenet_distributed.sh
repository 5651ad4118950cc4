#!/usr/bin/env bash
# ImageNet-1K finetuning of OFA-Large (classification as constrained generation of the class name), with the values of
# the original run_scripts/image_classify/train_imagenet_distributed.sh; validation uses the 20% val subset.
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT on every node.
# Pre-shuffled epoch files: DATA={DATA_DIR}/imagenet_1k_train_1.tsv,...,{DATA_DIR}/imagenet_1k_val_subset.tsv
# Usage (from the repo root or run_scripts/image_classify): bash train_imagenet_distributed.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_imagenet_distributed() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=8514 LOG_DIR=imagenet_1k_logs SAVE_DIR=imagenet_1k_checkpoints \
        DATA_DIR={DATASET_ROOT}/imagenet_1k_data DATA={DATA_DIR}/imagenet_1k_train.tsv,{DATA_DIR}/imagenet_1k_val_subset.tsv \
        --ans2label-file={DATA_DIR}/class2label_new.pkl "NEED:ANS2LABEL_FILE=class set" \
        RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt --selected-cols=0,2 --task=image_classify --arch=ofa_large \
        --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.1 --batch-size=4 --update-freq=4 \
        --encoder-drop-path-rate=0.1 --decoder-drop-path-rate=0.1 --dropout=0.1 --max-src-length=128 \
        --max-tgt-length=30 GRID="TOTAL_NUM_UPDATES WARMUP_UPDATES LR PATCH_IMAGE_SIZE" TOTAL_NUM_UPDATES=160000 \
        --warmup-updates=1000 --lr=5e-5 --patch-image-size=480 --keep-last-epochs=15 --save-interval=1 \
        --validate-interval=1 --best-checkpoint-metric=score --maximize-best-checkpoint-metric \
        --find-unused-parameters --freeze-encoder-embedding --freeze-decoder-embedding --valid-batch-size=20 \
        --imagenet-default-mean-and-std "$@"
}
ofa_main train_imagenet_distributed -- "$@"
