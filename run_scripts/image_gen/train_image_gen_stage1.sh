#!/usr/bin/env bash
# Text-to-image generation, stage 1: cross-entropy finetuning on COCO image codes (<code_i> tokens), with the values
# of the original run_scripts/image_gen/train_image_gen_stage1_distributed.sh (4 nodes x 8 GPUs there: set NNODES,
# NODE_RANK, MASTER_ADDR, NPROC_PER_NODE for that). Validation samples 24 images per caption, decodes them with the
# VQGAN and reports the CLIP score. Pre-shuffled epoch files: DATA={DATA_DIR}/coco_vqgan_train_1.tsv,...,<dev>.
# Usage (from the repo root or run_scripts/image_gen): bash train_image_gen_stage1.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/image_gen_env.sh"

train_image_gen_stage1() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=8214 LOG_DIR=image_gen_logs SAVE_DIR={SCRIPT_DIR}/image_gen_checkpoints "${IMAGE_GEN_ITEMS[@]}" \
        DATA={DATA_DIR}/coco_vqgan_train.tsv,{DATA_DIR}/coco_vqgan_dev.tsv RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt \
        --gen-images-path={RESULTS_ROOT}/image_gen_stage1 --arch=ofa_large --resnet-drop-path-rate= \
        --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.0 --batch-size=4 --update-freq=4 \
        --batch-size-valid=1 --encoder-drop-path-rate=0.1 --decoder-drop-path-rate=0.1 --dropout=0.1 \
        GRID="TOTAL_NUM_UPDATES WARMUP_UPDATES LR" TOTAL_NUM_UPDATES=40000 --warmup-updates=2000 --lr=1e-3 \
        --keep-last-epochs=15 --save-interval=3 --validate-interval=3 --best-checkpoint-metric=score \
        --maximize-best-checkpoint-metric --eval-args="$IMAGE_GEN_EVAL_ARGS" --max-src-length=64 \
        --max-tgt-length=1024 --find-unused-parameters "FP16=--fp16 --fp16-scale-window=256" "$@"
}
ofa_main train_image_gen_stage1 -- "$@"
