#!/usr/bin/env bash
# Image captioning, stage 1: finetune OFA-Large on COCO with cross-entropy (~139.5 CIDEr on val), with the values of
# the original run_scripts/caption/train_caption_stage1.sh. The _base, _el and _el_db scripts are variants of it.
# Usage (from the repo root or run_scripts/caption): bash train_caption_stage1.sh [extra train.py flags]
# Every NAME below can be set in the environment: LR=2e-5 bash train_caption_stage1.sh; the GRID names take lists
# (MAX_EPOCH="2 3": one run each). Items and settings: see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_caption_stage1() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=1051 LOG_DIR=stage1_logs SAVE_DIR=stage1_checkpoints RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt \
        DATA_DIR={DATASET_ROOT}/caption_data DATA={DATA_DIR}/caption_stage1_train.tsv,{DATA_DIR}/caption_val.tsv \
        --selected-cols=0,4,2 --task=caption --arch=ofa_large \
        --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.1 --drop-worst-ratio=0.2 \
        --lr=1e-5 --batch-size=8 --update-freq=4 GRID="MAX_EPOCH WARMUP_RATIO DROP_WORST_AFTER" \
        --max-epoch=2 --warmup-ratio=0.06 --drop-worst-after=2500 \
        --encoder-drop-path-rate=0.1 --decoder-drop-path-rate=0.1 --dropout=0.1 \
        --max-src-length=80 --max-tgt-length=20 --patch-image-size=480 \
        --no-epoch-checkpoints --keep-best-checkpoints=1 --save-interval=1 --validate-interval=1 \
        --save-interval-updates=500 --validate-interval-updates=500 \
        --eval-cider --eval-cider-cached-tokens={DATA_DIR}/cider_cached_tokens/coco-valid-words.p \
        "NEED:EVAL_CIDER_CACHED_TOKENS=CIDEr document frequencies" \
        '--eval-args={"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}' \
        --best-checkpoint-metric=cider --maximize-best-checkpoint-metric \
        --find-unused-parameters --freeze-encoder-embedding --freeze-decoder-embedding "$@"
}
ofa_main train_caption_stage1 -- "$@"
