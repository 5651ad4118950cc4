#!/usr/bin/env bash
# VQA finetuning of OFA-Large (constrained to the answer set, EMA, all-candidate validation).
# Same flags and hyper-parameters as the original run_scripts/vqa/train_vqa_distributed.sh.
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (and NPROC_PER_NODE) set.
# Pre-shuffled epoch files: DATA=$DATA_DIR/vqa_train_1.tsv,...,$DATA_DIR/vqa_train_10.tsv,$DATA_DIR/vqa_val.tsv
# Unconstrained finetuning (no answer set, issue #123): UNCONSTRAINED_TRAINING=1 VAL_INFERENCE_TYPE=beamsearch
# Usage (from the repo root or run_scripts/vqa): bash train_vqa_distributed.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8214}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/vqa_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/vqa_checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/vqa_data}"
DATA="${DATA:-$DATA_DIR/vqa_train.tsv,$DATA_DIR/vqa_val.tsv}"
ANS2LABEL_FILE="${ANS2LABEL_FILE:-$DATA_DIR/trainval_ans2label.pkl}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,5,2,3,4}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
BATCH_SIZE="${BATCH_SIZE:-4}"
UPDATE_FREQ="${UPDATE_FREQ:-4}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.2}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.2}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-80}"
MAX_OBJECT_LENGTH="${MAX_OBJECT_LENGTH:-30}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-30}"
NUM_BINS="${NUM_BINS:-1000}"
EMA_DECAY="${EMA_DECAY:-0.9999}"
EMA_START_UPDATE="${EMA_START_UPDATE:-0}"
VAL_INFERENCE_TYPE="${VAL_INFERENCE_TYPE:-allcand}"  # allcand or beamsearch
UNCONSTRAINED_TRAINING="${UNCONSTRAINED_TRAINING:-}"  # non-empty: --unconstrained-training (ignores the answer set)
# schedule: "updates" (large: TOTAL_NUM_UPDATES/WARMUP_UPDATES) or "epochs" (base: MAX_EPOCH/WARMUP_RATIO)
SCHEDULE="${SCHEDULE:-updates}"

require_data "$DATA"
[[ -n "$UNCONSTRAINED_TRAINING" ]] || require_file "$ANS2LABEL_FILE" "answer set (--ans2label-file)"
require_restore_file "$RESTORE_FILE"

case "$SCHEDULE" in
  updates) lengths="${TOTAL_NUM_UPDATES:-40000}"; warmups="${WARMUP_UPDATES:-1000}" ;;
  epochs) lengths="${MAX_EPOCH:-15}"; warmups="${WARMUP_RATIO:-0.04}" ;;
  *) ofa_die "SCHEDULE must be updates or epochs, got '$SCHEDULE'" ;;
esac

for length in $lengths; do
  for warmup in $warmups; do
    for lr in ${LR:-5e-5}; do
      for patch_image_size in ${PATCH_IMAGE_SIZE:-480}; do
        if [[ "$SCHEDULE" == updates ]]; then
          schedule_args=(--total-num-update="$length" --warmup-updates="$warmup" --max-update="$length")
        else
          schedule_args=(--max-epoch="$length" --warmup-ratio="$warmup")
        fi
        run="${length}_${warmup}_${lr}_${patch_image_size}"
        save_path="$SAVE_DIR/$run"
        mkdir -p "$save_path"
        ofa_finetune_flags "$save_path" vqa_gen
        ofa_train "$LOG_DIR/${run}_rank${NODE_RANK}.log" \
            "$DATA" \
            "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" \
            "${schedule_args[@]}" \
            --log-format=simple --log-interval=10 \
            --fixed-validation-seed=7 \
            --keep-last-epochs=15 \
            --save-interval=1 --validate-interval=1 \
            --best-checkpoint-metric=vqa_score --maximize-best-checkpoint-metric \
            --max-src-length="$MAX_SRC_LENGTH" \
            --max-object-length="$MAX_OBJECT_LENGTH" \
            --max-tgt-length="$MAX_TGT_LENGTH" \
            --find-unused-parameters \
            --freeze-encoder-embedding \
            --freeze-decoder-embedding \
            ${UNCONSTRAINED_TRAINING:+--unconstrained-training} \
            --ans2label-file="$ANS2LABEL_FILE" \
            --valid-batch-size=20 \
            --num-bins="$NUM_BINS" \
            --patch-image-size="$patch_image_size" \
            --prompt-type=prev_output \
            $(cuda_only --fp16 --fp16-scale-window=512) \
            --add-object \
            --uses-ema \
            --store-ema \
            --ema-fp32 \
            --ema-decay="$EMA_DECAY" \
            --ema-start-update="$EMA_START_UPDATE" \
            --val-inference-type="$VAL_INFERENCE_TYPE" \
            --num-workers=0 \
            "$@"
      done
    done
  done
done
