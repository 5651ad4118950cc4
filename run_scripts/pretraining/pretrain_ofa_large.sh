#!/usr/bin/env bash
# Continuous pretraining of OFA-Large (unify_task: captioning, VQA, grounding, grounded captioning, image-text
# matching, text infilling, image infilling, detection), same flags as the original
# run_scripts/pretraining/pretrain_ofa_large.sh.
# Usage (from the repo root or run_scripts/pretraining): bash pretrain_ofa_large.sh [extra train.py flags]
# Data: DATA_DIR (default dataset/pretrain_data) holds the original's pretrain_data_examples.zip layout;
#   python dataset/make_tiny_pretrain_data.py writes a tiny one: DATA_DIR=dataset/tiny/pretrain_data.
# Checkpoints go to SAVE_DIR/<arch>/ (the log to LOG_DIR/<arch>.log). A run resumes its own checkpoint_last.pt when
#   present; otherwise it restores RESTORE_FILE (the released ofa_large.pt) with --reset-optimizer
#   --reset-dataloader --reset-meters (continuous pretraining); without that file it pretrains from scratch.
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, NPROC_PER_NODE (see run_scripts/common.sh).
# Every value below can be overridden from the environment, e.g. LR=5e-5 MAX_EPOCH=10 bash pretrain_ofa_large.sh
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

ARCH="${ARCH:-ofa_large}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/checkpoints}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"

DATA_DIR="${DATA_DIR:-$DATASET_ROOT/pretrain_data}"
NEG_SAMPLE_DIR="${NEG_SAMPLE_DIR:-$DATA_DIR/negative_sample}"
DATA="${DATA:-$DATA_DIR/vision_language_examples.tsv}"
TEXT_DATA="${TEXT_DATA:-$DATA_DIR/text_examples.tsv}"
IMAGE_DATA="${IMAGE_DATA:-$DATA_DIR/image_examples.tsv}"
DETECTION_DATA="${DETECTION_DATA:-$DATA_DIR/detection_examples.tsv}"

SELECTED_COLS="${SELECTED_COLS:-0,1,2,3,4,5,6,7}"
TEXT_SELECTED_COLS="${TEXT_SELECTED_COLS:-0,1}"
IMAGE_SELECTED_COLS="${IMAGE_SELECTED_COLS:-0,1,2}"
DETECTION_SELECTED_COLS="${DETECTION_SELECTED_COLS:-0,1,2}"

CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.0}"
LR="${LR:-1e-4}"
MAX_EPOCH="${MAX_EPOCH:-50}"
WARMUP_RATIO="${WARMUP_RATIO:-0.01}"
BATCH_SIZE="${BATCH_SIZE:-4}"
UPDATE_FREQ="${UPDATE_FREQ:-1}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-80}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-30}"
NUM_BINS="${NUM_BINS:-1000}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-384}"
SAMPLE_PATCH_NUM="${SAMPLE_PATCH_NUM:-196}"
MAX_IMAGE_SIZE="${MAX_IMAGE_SIZE:-512}"

require_data "$DATA,$TEXT_DATA,$IMAGE_DATA,$DETECTION_DATA" \
    "download pretrain_data_examples.zip (see the README's pretraining section) into $DATA_DIR,
       or run python dataset/make_tiny_pretrain_data.py and set DATA_DIR=dataset/tiny/pretrain_data"
require_dir "$NEG_SAMPLE_DIR" "negative samples (--neg-sample-dir)"

run="$ARCH"
save_path="$SAVE_DIR/$run"
restore_args=()
if [[ -f "$save_path/checkpoint_last.pt" ]]; then
    echo "resuming $save_path/checkpoint_last.pt"
elif [[ -n "$RESTORE_FILE" && -f "$RESTORE_FILE" ]]; then
    restore_args=(--restore-file="$RESTORE_FILE" --reset-optimizer --reset-dataloader --reset-meters)
elif [[ -n "$RESTORE_FILE" ]]; then
    echo "warning: $RESTORE_FILE not found (see the README's checkpoints section): pretraining from scratch" >&2
fi
mkdir -p "$save_path"

ofa_train "$LOG_DIR/$run.log" \
    "$DATA" \
    --text-data="$TEXT_DATA" \
    --image-data="$IMAGE_DATA" \
    --detection-data="$DETECTION_DATA" \
    --selected-cols="$SELECTED_COLS" \
    --text-selected-cols="$TEXT_SELECTED_COLS" \
    --image-selected-cols="$IMAGE_SELECTED_COLS" \
    --detection-selected-cols="$DETECTION_SELECTED_COLS" \
    --bpe-dir="$BPE_DIR" \
    --user-dir="$USER_DIR" \
    "${restore_args[@]}" \
    --save-dir="$save_path" \
    --neg-sample-dir="$NEG_SAMPLE_DIR" \
    --task=unify_task \
    --arch="$ARCH" \
    --criterion="$CRITERION" \
    --label-smoothing="$LABEL_SMOOTHING" \
    --batch-size="$BATCH_SIZE" \
    --update-freq="$UPDATE_FREQ" \
    "${OFA_ARCH_FLAGS[@]}" \
    --resnet-drop-path-rate="$RESNET_DROP_PATH_RATE" \
    --encoder-drop-path-rate="$ENCODER_DROP_PATH_RATE" \
    --decoder-drop-path-rate="$DECODER_DROP_PATH_RATE" \
    --dropout="$DROPOUT" \
    --attention-dropout="$ATTENTION_DROPOUT" \
    --weight-decay=0.01 --optimizer=adam --adam-betas="(0.9,0.999)" --adam-eps=1e-08 --clip-norm=5.0 \
    --lr-scheduler=polynomial_decay --lr="$LR" \
    --max-epoch="$MAX_EPOCH" --warmup-ratio="$WARMUP_RATIO" \
    --log-format=simple --log-interval=10 \
    --fixed-validation-seed=7 \
    --keep-last-epochs=15 \
    --save-interval=1 \
    --save-interval-updates=6000 \
    --disable-validation \
    --max-src-length="$MAX_SRC_LENGTH" \
    --max-tgt-length="$MAX_TGT_LENGTH" \
    --num-bins="$NUM_BINS" \
    --patch-image-size="$PATCH_IMAGE_SIZE" \
    --sample-patch-num="$SAMPLE_PATCH_NUM" \
    --max-image-size="$MAX_IMAGE_SIZE" \
    $(cuda_only --fp16 --fp16-scale-window=128) \
    --num-workers=0 \
    "$@"
