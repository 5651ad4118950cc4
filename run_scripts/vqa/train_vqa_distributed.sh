#!/usr/bin/env bash
# VQA finetuning of OFA-Large (constrained to the answer set, EMA, all-candidate validation), with the values of the
# original run_scripts/vqa/train_vqa_distributed.sh. train_vqa_base_distributed.sh is a variant of it.
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (and NPROC_PER_NODE) set.
# Pre-shuffled epoch files: DATA={DATA_DIR}/vqa_train_1.tsv,...,{DATA_DIR}/vqa_train_10.tsv,{DATA_DIR}/vqa_val.tsv
# Unconstrained finetuning (no answer set, issue #123): UNCONSTRAINED_TRAINING=1 VAL_INFERENCE_TYPE=beamsearch
# Usage (from the repo root or run_scripts/vqa): bash train_vqa_distributed.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_vqa_distributed() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    local answers=("NEED:ANS2LABEL_FILE=answer set")
    [[ -z "${UNCONSTRAINED_TRAINING:-}" ]] || answers=(--unconstrained-training)
    ofa_train MASTER_PORT=8214 LOG_DIR=vqa_logs SAVE_DIR=vqa_checkpoints DATA_DIR={DATASET_ROOT}/vqa_data \
        DATA={DATA_DIR}/vqa_train.tsv,{DATA_DIR}/vqa_val.tsv --ans2label-file={DATA_DIR}/trainval_ans2label.pkl \
        "${answers[@]}" RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt --selected-cols=0,5,2,3,4 --task=vqa_gen \
        --arch=ofa_large --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.1 \
        --batch-size=4 --update-freq=4 --encoder-drop-path-rate=0.2 --decoder-drop-path-rate=0.2 --dropout=0.1 \
        GRID="TOTAL_NUM_UPDATES WARMUP_UPDATES LR PATCH_IMAGE_SIZE" TOTAL_NUM_UPDATES=40000 --warmup-updates=1000 \
        --lr=5e-5 --patch-image-size=480 --keep-last-epochs=15 --save-interval=1 --validate-interval=1 \
        --best-checkpoint-metric=vqa_score --maximize-best-checkpoint-metric \
        --max-src-length=80 --max-object-length=30 --max-tgt-length=30 --valid-batch-size=20 \
        --find-unused-parameters --freeze-encoder-embedding --freeze-decoder-embedding \
        --prompt-type=prev_output --add-object --uses-ema --store-ema --ema-fp32 --ema-decay=0.9999 \
        --ema-start-update=0 --val-inference-type=allcand "$@"
}
ofa_main train_vqa_distributed -- "$@"
