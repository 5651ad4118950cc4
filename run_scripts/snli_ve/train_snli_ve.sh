#!/usr/bin/env bash
# Visual entailment: finetune OFA-Large on SNLI-VE (premise caption added to the prompt, prev_output prompt type),
# with the values of the original run_scripts/snli_ve/train_snli_ve.sh. train_snli_ve_base.sh is a variant of it.
# Usage (from the repo root or run_scripts/snli_ve): bash train_snli_ve.sh [extra train.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_snli_ve() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=7051 DATA_DIR={DATASET_ROOT}/snli_ve_data \
        DATA={DATA_DIR}/snli_ve_train.tsv,{DATA_DIR}/snli_ve_dev.tsv RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt \
        --selected-cols=0,2,3,4,5 --task=snli_ve --arch=ofa_large --criterion=adjust_label_smoothed_cross_entropy \
        --label-smoothing=0.0 --warmup-ratio=0.06 --batch-size=4 --update-freq=8 GRID="MAX_EPOCH LR" \
        --max-epoch=6 --lr=2e-5 --encoder-drop-path-rate=0.2 --decoder-drop-path-rate=0.2 --dropout=0.1 \
        --max-src-length=80 --max-tgt-length=20 --patch-image-size=480 --prompt-type=prev_output --add-caption \
        --keep-best-checkpoints=1 --save-interval=1 --validate-interval=1 --save-interval-updates=500 \
        --validate-interval-updates=500 --best-checkpoint-metric=snli_score --maximize-best-checkpoint-metric \
        --find-unused-parameters "$@"
}
ofa_main train_snli_ve -- "$@"
