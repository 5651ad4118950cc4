#!/usr/bin/env bash
# Shared launcher for run_scripts/<task>/*.sh (source it, do not run it).
#
# Gives every script: strict mode, OFA_ROOT (works from the repository root, from the script's
# folder or from anywhere else), the venv (run_scripts/setup_env.sh), distributed defaults, and
#   ofa_train LOG_FILE ARGS...     torchrun ... train.py ARGS... $EXTRA_ARGS   (output tee'd to LOG_FILE)
#   ofa_evaluate LOG_FILE ARGS...  torchrun ... evaluate.py ARGS... $EXTRA_ARGS
#   cuda_only FLAGS...             prints FLAGS only when a GPU is used (--fp16 and friends)
#   require_file PATH WHAT [HINT]  / require_dir / require_data "a.tsv,b.tsv": clear errors for missing inputs
#   model_overrides KEY=VALUE...   the Python dict literal evaluate.py's --model-overrides expects
#   default NAME VALUE             NAME=VALUE unless set in the environment (for values with quotes)
#
# Environment (all optional):
#   NPROC_PER_NODE  processes per node (default: number of GPUs, 1 on CPU; GPUS_PER_NODE also accepted)
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   multi-node settings (WORKER_CNT accepted for NNODES)
#   NUM_GPUS        skip GPU detection (0 forces CPU: --cpu, gloo, no fp16)
#   LAUNCHER        torchrun (default) or python (one process, no torch.distributed)
#   EXTRA_ARGS      appended to every train.py/evaluate.py command (word-split), e.g. "--max-update 10"
#   OFA_DRY_RUN     non-empty: print each command (shell-quoted, one per line) instead of running it
#   DATASET_ROOT, CHECKPOINT_ROOT, RESULTS_ROOT   default to dataset/, checkpoints/, results/ of the repo
set -euo pipefail
[[ -z "${OFA_COMMON_LOADED:-}" ]] || return 0  # a variant script sources its main script after us
OFA_COMMON_LOADED=1

OFA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# the folder of the script that sourced us: logs and checkpoints go next to it, like the original
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[1]:-${BASH_SOURCE[0]}}")" && pwd)"

# shellcheck disable=SC1091
source "$OFA_ROOT/run_scripts/setup_env.sh"

DATASET_ROOT="${DATASET_ROOT:-$OFA_ROOT/dataset}"
CHECKPOINT_ROOT="${CHECKPOINT_ROOT:-$OFA_ROOT/checkpoints}"
RESULTS_ROOT="${RESULTS_ROOT:-$OFA_ROOT/results}"
BPE_DIR="${BPE_DIR:-$OFA_ROOT/utils/BPE}"
USER_DIR="${USER_DIR:-$OFA_ROOT}"
EXTRA_ARGS="${EXTRA_ARGS:-}"
LAUNCHER="${LAUNCHER:-torchrun}"

_count_gpus() {
    # nvidia-smi is much faster than importing torch; CUDA_VISIBLE_DEVICES narrows the visible set
    if [[ -n "${CUDA_VISIBLE_DEVICES+x}" ]]; then
        local visible="${CUDA_VISIBLE_DEVICES//[[:space:]]/}"
        if [[ -z "$visible" || "$visible" == "-1" ]]; then
            echo 0
        else
            echo $(( $(tr -cd ',' <<<"$visible" | wc -c) + 1 ))
        fi
    elif command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
    else
        echo 0
    fi
}
NUM_GPUS="${NUM_GPUS:-$(_count_gpus)}"
if (( NUM_GPUS > 0 )); then _default_nproc="$NUM_GPUS"; else _default_nproc=1; fi
NPROC_PER_NODE="${NPROC_PER_NODE:-${GPUS_PER_NODE:-$_default_nproc}}"
NNODES="${NNODES:-${WORKER_CNT:-1}}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
unset _default_nproc

ofa_die() {
    echo "error: $*" >&2
    exit 1
}

require_file() {  # PATH WHAT [HINT]
    [[ -f "$1" ]] && return 0
    ofa_die "$2 not found: $1${3:+
       $3}"
}

require_dir() {  # PATH WHAT [HINT]
    [[ -d "$1" ]] && return 0
    ofa_die "$2 not found: $1${3:+
       $3}"
}

require_data() {  # "a.tsv,b.tsv" [HINT]: every comma-separated data file must exist
    local path
    local -a paths
    IFS=',' read -r -a paths <<<"$1"
    for path in "${paths[@]}"; do
        require_file "$path" "data file" "${2:-see dataset/README.md (or set DATA_DIR / DATA)}"
    done
}

require_restore_file() {  # PATH: a finetuning script's pretrained checkpoint; empty means start from scratch
    [[ -z "$1" ]] && return 0
    require_file "$1" "checkpoint to restore (--restore-file)" \
        "download it (see the README's checkpoints section) into $CHECKPOINT_ROOT/, or set RESTORE_FILE= to start from random weights"
}

default() {  # NAME VALUE: set NAME to VALUE unless the environment already set it (for JSON values)
    [[ -n "${!1:-}" ]] || printf -v "$1" '%s' "$2"
}

cuda_only() {  # FLAGS...: echo the flags only when training/evaluating on GPUs
    if (( NUM_GPUS > 0 )); then echo "$@"; fi
}

model_overrides() {  # KEY=VALUE...: {"key":"value",...}; True/False/None and integers stay Python literals
    local pair key value out=""
    for pair in "$@"; do
        key="${pair%%=*}"
        value="${pair#*=}"
        case "$value" in
            True | False | None) out+="${out:+,}\"$key\":$value" ;;
            "" | *[!0-9]*) out+="${out:+,}\"$key\":\"$value\"" ;;
            *) out+="${out:+,}\"$key\":$value" ;;  # integers stay numbers
        esac
    done
    echo "{$out}"
}

_ofa_launch() {  # ENTRY LOG_FILE ARGS...
    local entry="$1" log_file="$2"
    shift 2
    local -a launch device_args=() extra=()
    if [[ "$LAUNCHER" == "python" ]]; then
        (( NPROC_PER_NODE * NNODES == 1 )) \
            || ofa_die "LAUNCHER=python runs one process; NPROC_PER_NODE=$NPROC_PER_NODE NNODES=$NNODES needs torchrun"
        launch=(python)
    elif [[ "$LAUNCHER" == "torchrun" ]]; then
        launch=(torchrun "--nproc_per_node=$NPROC_PER_NODE" "--nnodes=$NNODES" "--node_rank=$NODE_RANK"
                "--master_addr=$MASTER_ADDR" "--master_port=$MASTER_PORT")
        (( NUM_GPUS > 0 )) || device_args+=(--distributed-backend=gloo)
    else
        ofa_die "LAUNCHER must be torchrun or python, got '$LAUNCHER'"
    fi
    (( NUM_GPUS > 0 )) || device_args+=(--cpu)
    read -r -a extra <<<"$EXTRA_ARGS"  # whitespace-split, no globbing
    local -a cmd=("${launch[@]}" "$OFA_ROOT/$entry" "$@" "${device_args[@]}" "${extra[@]}")
    if [[ -n "${OFA_DRY_RUN:-}" ]]; then
        printf '%q' "${cmd[0]}"; printf ' %q' "${cmd[@]:1}"; echo
        return 0
    fi
    mkdir -p "$(dirname "$log_file")"
    {
        echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') $(hostname)"
        printf '# %q' "${cmd[0]}"; printf ' %q' "${cmd[@]:1}"; echo
    } | tee -a "$log_file"
    "${cmd[@]}" 2>&1 | tee -a "$log_file"
}

# switches every original finetuning script passes: the released checkpoints' architecture
OFA_ARCH_FLAGS=(--encoder-normalize-before --decoder-normalize-before --share-decoder-input-output-embed
    --share-all-embeddings --layernorm-embedding --patch-layernorm-embedding --code-layernorm-embedding
    --add-type-embedding --scale-attn --scale-fc --scale-heads --disable-entangle)
# optimizer of every original finetuning script (AdamW-style weight decay, polynomial decay schedule)
OFA_OPTIM_FLAGS=(--weight-decay=0.01 --optimizer=adam "--adam-betas=(0.9,0.999)" --adam-eps=1e-08 --clip-norm=1.0
    --lr-scheduler=polynomial_decay)

# The flags every finetuning script passes alike, from its variables (the original's scripts repeat them):
#   ofa_finetune_flags SAVE_PATH TASK [UPDATE_FREQ]  ->  OFA_FINETUNE_FLAGS
# --label-smoothing and --resnet-drop-path-rate only when the script defines LABEL_SMOOTHING /
# RESNET_DROP_PATH_RATE (SCST and image generation scripts do not use them).
ofa_finetune_flags() {
    OFA_FINETUNE_FLAGS=(--selected-cols="$SELECTED_COLS" --bpe-dir="$BPE_DIR" --user-dir="$USER_DIR"
        ${RESTORE_FILE:+--restore-file="$RESTORE_FILE"} --reset-optimizer --reset-dataloader --reset-meters
        --save-dir="$1" --task="$2" --arch="$ARCH" --criterion="$CRITERION"
        ${LABEL_SMOOTHING:+--label-smoothing="$LABEL_SMOOTHING"}
        --batch-size="$BATCH_SIZE" --update-freq="${3:-$UPDATE_FREQ}" "${OFA_ARCH_FLAGS[@]}"
        ${RESNET_DROP_PATH_RATE:+--resnet-drop-path-rate="$RESNET_DROP_PATH_RATE"}
        --encoder-drop-path-rate="$ENCODER_DROP_PATH_RATE" --decoder-drop-path-rate="$DECODER_DROP_PATH_RATE"
        --dropout="$DROPOUT" --attention-dropout="$ATTENTION_DROPOUT" "${OFA_OPTIM_FLAGS[@]}")
}

ofa_train() { _ofa_launch train.py "$@"; }
ofa_evaluate() { _ofa_launch evaluate.py "$@"; }
