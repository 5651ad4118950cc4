#!/usr/bin/env bash
# Image captioning, stage 2: CIDEr optimization (SCST) from the best stage-1 checkpoint, with the values of the
# original run_scripts/caption/train_caption_stage2.sh. train_caption_stage2_base.sh is a variant of it.
# CIDEr optimization is unstable: if training diverges, raise BATCH_SIZE, lower LR, or pass --freeze-resnet.
# Usage (from the repo root or run_scripts/caption): bash train_caption_stage2.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_caption_stage2() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=1052 LOG_DIR=stage2_logs SAVE_DIR=stage2_checkpoints DATA_DIR={DATASET_ROOT}/caption_data \
        DATA={DATA_DIR}/caption_stage2_train.tsv,{DATA_DIR}/caption_val.tsv --selected-cols=1,4,2 \
        RESTORE_FILE={CHECKPOINT_ROOT}/caption_stage1_best.pt --task=caption --arch=ofa_large \
        --criterion=scst_reward_criterion --batch-size=2 --update-freq=4 --end-learning-rate=2e-7 \
        --encoder-drop-path-rate=0.0 --decoder-drop-path-rate=0.0 --dropout=0.0 --warmup-ratio=0.06 \
        GRID="LR MAX_EPOCH" --lr=1e-5 --max-epoch=3 --max-src-length=80 --max-tgt-length=20 --patch-image-size=480 \
        --no-epoch-checkpoints --keep-best-checkpoints=1 --save-interval=1 --validate-interval=1 \
        --save-interval-updates=500 --validate-interval-updates=500 \
        --eval-cider --eval-cider-cached-tokens={DATA_DIR}/cider_cached_tokens/coco-valid-words.p \
        '--eval-args={"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}' \
        --best-checkpoint-metric=cider --maximize-best-checkpoint-metric \
        --find-unused-parameters --freeze-encoder-embedding --freeze-decoder-embedding \
        --scst --scst-cider-cached-tokens={DATA_DIR}/cider_cached_tokens/coco-train-words.p \
        '--scst-args={"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}' \
        "NEED:EVAL_CIDER_CACHED_TOKENS=CIDEr document frequencies" \
        "NEED:SCST_CIDER_CACHED_TOKENS=CIDEr document frequencies" \
        "FP16=--memory-efficient-fp16 --fp16-scale-window=512" "$@"
}
ofa_main train_caption_stage2 -- "$@"
