#!/usr/bin/env bash
# GLUE finetuning of OFA-Large, one task per run: bash train_glue.sh cola|mnli|mrpc|qnli|qqp|rte|sst2
# (train_<task>.sh call this). The table below holds the original run_scripts/glue/train_<task>.sh values;
# each sweeps MAX_EPOCH x LR x UPDATE_FREQ like the original (pin one value each with the environment).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
GLUE_TASK="${GLUE_TASK:-${1:-}}"
[[ -z "${1:-}" || "$1" != "$GLUE_TASK" ]] || shift

#                 port  selected_cols batch update_freq grid  validate_interval_updates  best metric
case "$GLUE_TASK" in
  cola) glue_defaults=(3051 1,2     16 "4 2 1" 10   mcc) ;;
  mnli) glue_defaults=(3052 0,1,2   8  "4 2"   1000 acc) ;;
  mrpc) glue_defaults=(3053 0,1,2   16 "4 2 1" 10   acc) ;;
  qnli) glue_defaults=(3054 1,2,3   8  "4 2"   500  acc) ;;
  qqp)  glue_defaults=(3055 3,4,5   8  "4 2"   1000 acc) ;;
  rte)  glue_defaults=(3056 1,2,3   8  "8 4 2" 10   acc) ;;
  sst2) glue_defaults=(3057 0,1     16 "2 1"   50   acc) ;;
  *) echo "error: usage: train_glue.sh cola|mnli|mrpc|qnli|qqp|rte|sst2 (or GLUE_TASK=...), got '$GLUE_TASK'" >&2; exit 1 ;;
esac
MASTER_PORT="${MASTER_PORT:-${glue_defaults[0]}}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs/$GLUE_TASK}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/checkpoints/$GLUE_TASK}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/glue_data}"
DATA="${DATA:-$DATA_DIR/${GLUE_TASK}_train.tsv,$DATA_DIR/${GLUE_TASK}_dev.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-${glue_defaults[1]}}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.0}"
WARMUP_RATIO="${WARMUP_RATIO:-0.06}"
BATCH_SIZE="${BATCH_SIZE:-${glue_defaults[2]}}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-512}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-30}"
NUM_BINS="${NUM_BINS:-1000}"
PROMPT_TYPE="${PROMPT_TYPE:-src}"
VALIDATE_INTERVAL_UPDATES="${VALIDATE_INTERVAL_UPDATES:-${glue_defaults[4]}}"
BEST_CHECKPOINT_METRIC="${BEST_CHECKPOINT_METRIC:-${glue_defaults[5]}}"

require_data "$DATA"
require_restore_file "$RESTORE_FILE"

for max_epoch in ${MAX_EPOCH:-5 7 10}; do
  for lr in ${LR:-1e-4 7e-5 6e-5 5e-5 3e-5}; do
    for update_freq in ${UPDATE_FREQ:-${glue_defaults[3]}}; do
      run="${max_epoch}_${lr}_${update_freq}"
      save_path="$SAVE_DIR/$run"
      mkdir -p "$save_path"
      ofa_finetune_flags "$save_path" "$GLUE_TASK" "$update_freq"
      ofa_train "$LOG_DIR/$run.log" \
          "$DATA" \
          "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" \
          --max-epoch="$max_epoch" --warmup-ratio="$WARMUP_RATIO" \
          --log-format=simple --log-interval=10 \
          --fixed-validation-seed=7 \
          --keep-best-checkpoints=1 \
          --save-interval=100000 --validate-interval=1 \
          --save-interval-updates=100000 --validate-interval-updates="$VALIDATE_INTERVAL_UPDATES" \
          --best-checkpoint-metric="$BEST_CHECKPOINT_METRIC" --maximize-best-checkpoint-metric \
          --max-src-length="$MAX_SRC_LENGTH" \
          --max-tgt-length="$MAX_TGT_LENGTH" \
          --find-unused-parameters \
          --num-bins="$NUM_BINS" \
          --prompt-type="$PROMPT_TYPE" \
          $(cuda_only --fp16 --fp16-init-scale=16 --fp16-scale-window=512) \
          --num-workers=0 \
          "$@"
    done
  done
done
