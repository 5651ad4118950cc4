#!/usr/bin/env bash
# Continuous pretraining of OFA-Large (unify_task: captioning, VQA, grounding, grounded captioning, image-text
# matching, text infilling, image infilling, detection), with the values of the original
# run_scripts/pretraining/pretrain_ofa_large.sh. pretrain_ofa_base.sh is a variant of it.
# Usage (from the repo root or run_scripts/pretraining): bash pretrain_ofa_large.sh [extra train.py flags]
# Data: DATA_DIR (default dataset/pretrain_data) holds the original's pretrain_data_examples.zip layout;
#   python dataset/make_tiny_pretrain_data.py writes a tiny one: DATA_DIR=dataset/tiny/pretrain_data.
# Checkpoints go to SAVE_DIR/<arch>/ (the log to LOG_DIR/<arch>.log). A run resumes its own checkpoint_last.pt when
#   present; otherwise it restores RESTORE_FILE (the released ofa_large.pt) with --reset-optimizer
#   --reset-dataloader --reset-meters (continuous pretraining); without that file it pretrains from scratch.
# Every NAME below can be set in the environment (LR=5e-5 MAX_EPOCH=10 ...); see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

pretrain_ofa_large() {  # [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    ofa_train MASTER_PORT=1051 RESUME=1 RUN={ARCH} --arch=ofa_large RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt \
        DATA_DIR={DATASET_ROOT}/pretrain_data DATA={DATA_DIR}/vision_language_examples.tsv \
        --text-data={DATA_DIR}/text_examples.tsv --image-data={DATA_DIR}/image_examples.tsv \
        --detection-data={DATA_DIR}/detection_examples.tsv "NEED:TEXT_DATA=data file" "NEED:IMAGE_DATA=data file" \
        "NEED:DETECTION_DATA=data file" --neg-sample-dir={DATA_DIR}/negative_sample \
        "NEED:NEG_SAMPLE_DIR=negative samples" --selected-cols=0,1,2,3,4,5,6,7 --text-selected-cols=0,1 \
        --image-selected-cols=0,1,2 --detection-selected-cols=0,1,2 --task=unify_task \
        --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.0 --lr=1e-4 --max-epoch=50 \
        --warmup-ratio=0.01 --batch-size=4 --update-freq=1 --encoder-drop-path-rate=0.1 \
        --decoder-drop-path-rate=0.1 --dropout=0.1 --clip-norm=5.0 --keep-last-epochs=15 --save-interval=1 \
        --save-interval-updates=6000 --disable-validation --max-src-length=80 --max-tgt-length=30 \
        --patch-image-size=384 --sample-patch-num=196 --max-image-size=512 "FP16=--fp16 --fp16-scale-window=128" "$@"
}
ofa_main pretrain_ofa_large -- "$@"
