#!/usr/bin/env bash
# Text-to-image generation, stage 2: CLIP-score optimization (SCST with clip_scst_reward_criterion: 5 sampled images
# per caption, each one's baseline the mean CLIP reward of the other 4) from the last stage-1 checkpoint, with the
# values of the original run_scripts/image_gen/train_image_gen_stage2_distributed.sh.
# Usage (from the repo root or run_scripts/image_gen): bash train_image_gen_stage2.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/image_gen_env.sh"

train_image_gen_stage2() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    # RESTORE_FILE: train_image_gen_stage1.sh writes its last checkpoint there (with the same SAVE_DIR)
    ofa_train MASTER_PORT=8215 LOG_DIR=image_gen_stage2_logs SAVE_DIR={SCRIPT_DIR}/image_gen_checkpoints \
        "${IMAGE_GEN_ITEMS[@]}" DATA={DATA_DIR}/coco_vqgan_train.tsv,{DATA_DIR}/coco_vqgan_dev.tsv \
        RESTORE_FILE={SAVE_DIR}/40000_2000_1e-3/checkpoint_last.pt --gen-images-path={RESULTS_ROOT}/image_gen_stage2 \
        --arch=ofa_large --criterion=clip_scst_reward_criterion --resnet-drop-path-rate= --batch-size=1 \
        --update-freq=1 --batch-size-valid=1 --encoder-drop-path-rate=0.0 --decoder-drop-path-rate=0.0 --dropout=0.0 \
        GRID="TOTAL_NUM_UPDATES WARMUP_UPDATES LR" TOTAL_NUM_UPDATES=5000 --warmup-updates=0 --lr=1e-6 \
        --keep-last-epochs=15 --save-interval=1 --validate-interval=1 --save-interval-updates=200 \
        --validate-interval-updates=200 --freeze-resnet --best-checkpoint-metric=score \
        --maximize-best-checkpoint-metric --eval-args="$IMAGE_GEN_EVAL_ARGS" --scst \
        '--scst-args={"beam":5,"min_len":1024,"max_len_a":0,"max_len_b":1024,"sampling_topk":256,"temperature":1.0}' \
        --max-src-length=64 --max-tgt-length=1024 --find-unused-parameters "FP16=--fp16 --fp16-scale-window=256" "$@"
}
ofa_main train_image_gen_stage2 -- "$@"
