#!/usr/bin/env bash
# GLUE finetuning of OFA-Large, one task per run: bash train_glue.sh cola|mnli|mrpc|qnli|qqp|rte|sst2 [extra flags]
# (train_<task>.sh call it). The table holds what the original run_scripts/glue/train_<task>.sh scripts change; each
# sweeps MAX_EPOCH x LR x UPDATE_FREQ like the original (pin one value each with the environment).
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

train_glue() {  # TASK [ITEMS...] [-- train.py flags]: ITEMS replace the values below
    local task="$1" table
    shift
    #                 port  selected_cols batch update_freq grid  validate_interval_updates  best metric
    case "$task" in
      cola) table=(3051 1,2     16 "4 2 1" 10   mcc) ;;
      mnli) table=(3052 0,1,2   8  "4 2"   1000 acc) ;;
      mrpc) table=(3053 0,1,2   16 "4 2 1" 10   acc) ;;
      qnli) table=(3054 1,2,3   8  "4 2"   500  acc) ;;
      qqp)  table=(3055 3,4,5   8  "4 2"   1000 acc) ;;
      rte)  table=(3056 1,2,3   8  "8 4 2" 10   acc) ;;
      sst2) table=(3057 0,1     16 "2 1"   50   acc) ;;
      *) ofa_die "usage: train_glue.sh cola|mnli|mrpc|qnli|qqp|rte|sst2 [extra train.py flags], got '$task'" ;;
    esac
    ofa_train MASTER_PORT="${table[0]}" LOG_DIR="logs/$task" SAVE_DIR="checkpoints/$task" \
        DATA_DIR={DATASET_ROOT}/glue_data DATA="{DATA_DIR}/${task}_train.tsv,{DATA_DIR}/${task}_dev.tsv" \
        RESTORE_FILE={CHECKPOINT_ROOT}/ofa_large.pt --selected-cols="${table[1]}" --task="$task" --arch=ofa_large \
        --criterion=adjust_label_smoothed_cross_entropy --label-smoothing=0.0 --warmup-ratio=0.06 \
        --batch-size="${table[2]}" GRID="MAX_EPOCH LR UPDATE_FREQ" "--max-epoch=5 7 10" \
        "--lr=1e-4 7e-5 6e-5 5e-5 3e-5" --update-freq="${table[3]}" --encoder-drop-path-rate=0.1 \
        --decoder-drop-path-rate=0.1 --dropout=0.1 --max-src-length=512 --max-tgt-length=30 --prompt-type=src \
        --keep-best-checkpoints=1 --save-interval=100000 --validate-interval=1 --save-interval-updates=100000 \
        --validate-interval-updates="${table[4]}" --best-checkpoint-metric="${table[5]}" \
        --maximize-best-checkpoint-metric --find-unused-parameters \
        "FP16=--fp16 --fp16-init-scale=16 --fp16-scale-window=512" "$@"
}
ofa_main train_glue "${1:-}" -- "${@:2}"
