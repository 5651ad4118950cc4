#!/usr/bin/env bash
# Abstractive summarization: finetune OFA-Large on Gigaword (text only, source noise 0.2, best by ROUGE-L), with the
# values of the original run_scripts/gigaword/train_gigaword.sh.
# Usage (from the repo root or run_scripts/gigaword): bash train_gigaword.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_gigaword() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=2051 DATA_DIR={DATASET_ROOT}/gigaword_data \
        DATA={DATA_DIR}/gigaword_train.tsv,{DATA_DIR}/gigaword_dev.tsv RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt \
        --selected-cols=0,1 --task=gigaword --arch=ofa_large --criterion=adjust_label_smoothed_cross_entropy \
        --label-smoothing=0.1 --warmup-ratio=0.06 --batch-size=64 --update-freq=2 --encoder-drop-path-rate=0.1 \
        --decoder-drop-path-rate=0.1 --dropout=0.1 --max-src-length=512 --max-tgt-length=64 \
        GRID="MAX_EPOCH LR NOISE_RATIO" --max-epoch=6 --lr=1e-4 --noise-ratio=0.2 --no-epoch-checkpoints \
        --keep-best-checkpoints=1 --save-interval=1 --validate-interval=1 --save-interval-updates=2500 \
        --validate-interval-updates=2500 --best-checkpoint-metric=rougeL_f1 --maximize-best-checkpoint-metric \
        --find-unused-parameters --eval-rouge --eval-print-samples \
        '--eval-args={"beam":6,"lenpen":0.7,"max_len_b":32,"no_repeat_ngram_size":3}' "$@"
}
ofa_main train_gigaword -- "$@"
