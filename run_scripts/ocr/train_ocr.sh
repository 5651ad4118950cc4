#!/usr/bin/env bash
# OFA-OCR: finetune OFA-CN on Chinese text-line images. The original ships no training script: these values follow
# its captioning finetuning (label-smoothed cross-entropy, polynomial decay after a warmup ratio, 480 px, beam search
# at validation), with the best checkpoint by exact-match accuracy. Documents: bash train_ocr.sh --is-document
# Usage (from the repo root or run_scripts/ocr): bash train_ocr.sh [extra train.py flags]
# Every NAME below can be set in the environment; the GRID names take lists. See run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_ocr() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=1061 DATA_DIR={DATASET_ROOT}/caption_data \
        DATA={DATA_DIR}/ocr_scene_train.tsv,{DATA_DIR}/ocr_scene_val.tsv RESTORE_FILE={CHECKPOINT_ROOT}/ofa_cn_large.pt \
        --bpe=bert --bpe-dir={OFA_ROOT}/utils/BERT_CN_dict --selected-cols=0,1,2 --task=ocr --arch=ofa_large \
        --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.1 --batch-size=8 --update-freq=4 \
        GRID="MAX_EPOCH WARMUP_RATIO LR" --max-epoch=5 --warmup-ratio=0.06 --lr=5e-5 \
        --encoder-drop-path-rate=0.1 --decoder-drop-path-rate=0.1 --dropout=0.1 \
        --max-src-length=80 --max-tgt-length=30 --patch-image-size=480 \
        --no-epoch-checkpoints --keep-best-checkpoints=1 --save-interval=1 --validate-interval=1 \
        '--eval-args={"beam":5,"max_len_b":64,"no_repeat_ngram_size":0}' \
        --best-checkpoint-metric=acc --maximize-best-checkpoint-metric --find-unused-parameters "$@"
}
ofa_main train_ocr -- "$@"
