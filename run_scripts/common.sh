#!/usr/bin/env bash
# The one launcher behind run_scripts/<task>/*.sh. Sourcing this file only defines OFA_ROOT and the functions
# below: it installs nothing and leaves the caller's shell options alone. A script is one function that hands its
# values to ofa_train or ofa_evaluate, run by ofa_main, which first calls ofa_setup (the venv):
#
#   train_x() { ofa_train MASTER_PORT=1051 DATA={DATASET_ROOT}/x_data/train.tsv --lr=1e-5 --eval-acc "$@"; }
#   ofa_main train_x -- "$@"
#
# A variant script sources the main one (ofa_main does nothing then) and calls its function with the values it
# changes: later items replace earlier ones of the same NAME.
#
# ofa_train ITEMS... [-- ARGS...]      one torchrun train.py command per point of the GRID
# ofa_evaluate ITEMS... [-- ARGS...]   one torchrun evaluate.py command
# ITEMS (one word each):
#   --flag=VALUE    a train.py/evaluate.py flag; its NAME is the flag in capitals with _ for - (--max-epoch:
#                   MAX_EPOCH). An empty VALUE leaves the flag out (so a variant or the environment can drop it).
#   --switch        passed as it is
#   NAME=VALUE      a setting of the launcher (below), or a value the other items use as {NAME}
#   NEED:NAME=WHAT  the file or folder that NAME holds must exist (unless empty); WHAT names it in the error
#   --              the rest are the script's arguments: first one positional word for each NAME in ARGS, then
#                   extra train.py/evaluate.py flags, appended after everything else (so they win)
# A VALUE may use {NAME} for another value (also {OFA_ROOT} and {SCRIPT_DIR}, the running script's folder).
# Every NAME can be set in the environment: an exported NAME replaces the script's value (LR=2e-5 bash x.sh), and a
# positional argument replaces both.
#
# Settings, with the launcher's defaults:
#   DATA             the positional data argument; every comma-separated file must exist
#   DATASET_ROOT={OFA_ROOT}/dataset  CHECKPOINT_ROOT={OFA_ROOT}/checkpoints  RESULTS_ROOT={OFA_ROOT}/results
#   BPE_DIR={OFA_ROOT}/utils/BPE (--bpe-dir when training)  USER_DIR={OFA_ROOT} (--user-dir)
#   LOG_DIR=logs     log folder (relative: to the script's folder, like the original's ./logs)
#   MASTER_PORT=29500  ARGS (names of positional arguments)  FP16 (flags added when GPUs are used)
#   train only:
#   SAVE_DIR=checkpoints  runs go to SAVE_DIR/RUN, logs to LOG_DIR/RUN.log (RUN_rankN.log on several nodes)
#   GRID             names whose values are space-separated lists: one run per combination (LR="1e-5 2e-5")
#   RUN              the run name (default: the GRID values joined by _)
#   RESTORE_FILE     checkpoint to start from (--restore-file with --reset-optimizer/-dataloader/-meters); empty:
#                    random weights
#   RESUME=1         continue SAVE_DIR/RUN/checkpoint_last.pt when present; a missing RESTORE_FILE only warns
#   TOTAL_NUM_UPDATES  --total-num-update and --max-update
#   evaluate only:
#   CHECKPOINT       --path; must exist
#   LOG              log file name (without .log)
#   MODEL_OVERRIDES  names whose values go into --model-overrides (as lower-case keys) instead of flags
#
# Read from the environment only (machine settings, all optional):
#   NUM_GPUS        skip GPU detection (0 forces CPU: --cpu, gloo, no FP16 flags)
#   NPROC_PER_NODE  processes per node (default: number of GPUs, 1 on CPU; GPUS_PER_NODE also accepted)
#   NNODES, NODE_RANK, MASTER_ADDR  multi-node settings (WORKER_CNT accepted for NNODES)
#   LAUNCHER        torchrun (default) or python (one process, no torch.distributed)
#   EXTRA_ARGS      appended to every command (word-split), e.g. "--max-update 10"
#   OFA_DRY_RUN     non-empty: check every input, list every missing file, print each command (shell-quoted, one
#                   a line) instead of running it; the exit status is 1 when a file is missing
#
# After a call, OFA_VALUES[NAME] holds each value of the (last) command, for what a script runs afterwards.

OFA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ofa_die() {
    echo "error: $*" >&2
    exit 1
}

ofa_setup() {  # the explicit setup step: activate the caller's venv (OFA_VENV, the active one) or the repository's; preload jemalloc
    # shellcheck disable=SC1091
    source "$OFA_ROOT/run_scripts/setup_env.sh"
    # shellcheck disable=SC1091
    source "$OFA_ROOT/run_scripts/allocator.sh"
}

ofa_main() {  # FUNC ARGS...: setup, then FUNC ARGS, when the file calling ofa_main is the script being run
    [[ "${BASH_SOURCE[1]}" -ef "$0" ]] || return 0  # sourced by a variant script, which calls FUNC itself
    ofa_setup || exit 1
    "$@"
}

ofa_train() { _ofa_run train "$@"; }
ofa_evaluate() { _ofa_run evaluate "$@"; }

# switches of every original finetuning script: the released checkpoints' architecture
_OFA_ARCH_SWITCHES=(--encoder-normalize-before --decoder-normalize-before --share-decoder-input-output-embed
    --share-all-embeddings --layernorm-embedding --patch-layernorm-embedding --code-layernorm-embedding
    --add-type-embedding --scale-attn --scale-fc --scale-heads --disable-entangle)
# values every original script shares (a script's own items come after these and replace them)
_OFA_COMMON_ITEMS=(DATASET_ROOT={OFA_ROOT}/dataset CHECKPOINT_ROOT={OFA_ROOT}/checkpoints
    RESULTS_ROOT={OFA_ROOT}/results BPE_DIR={OFA_ROOT}/utils/BPE LOG_DIR=logs MASTER_PORT=29500
    --user-dir={OFA_ROOT} --log-format=simple --log-interval=10 --num-workers=0 FP16=--fp16)
_OFA_TRAIN_ITEMS=(SAVE_DIR=checkpoints --bpe-dir={OFA_ROOT}/utils/BPE "${_OFA_ARCH_SWITCHES[@]}"
    --weight-decay=0.01 --optimizer=adam "--adam-betas=(0.9,0.999)" --adam-eps=1e-08 --clip-norm=1.0
    --lr-scheduler=polynomial_decay --fixed-validation-seed=7 --resnet-drop-path-rate=0.0 --attention-dropout=0.0
    --num-bins=1000 "FP16=--fp16 --fp16-scale-window=512")
_OFA_EVALUATE_ITEMS=(--seed=7)

_ofa_parse() {  # ITEMS... [-- ARGS...]: fills _ofa_run's tables
    local item name exported
    exported=" $(compgen -e | tr '\n' ' ') "
    while (( $# )); do
        item="$1"
        shift
        [[ "$item" == "--" ]] && break
        if [[ "$item" =~ ^NEED:([A-Z][A-Z0-9_]*)=(.*)$ ]]; then
            needs+=("${BASH_REMATCH[1]}")
            what[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
            continue
        elif [[ "$item" =~ ^(--[a-z0-9-]+)=(.*)$ ]]; then
            name="${BASH_REMATCH[1]#--}"
            name="${name//-/_}"
            name="${name^^}"
            kind[$name]=flag
            flag[$name]="${BASH_REMATCH[1]}"
            value[$name]="${BASH_REMATCH[2]}"
        elif [[ "$item" =~ ^--[a-z0-9-]+$ ]]; then
            name="$item"
            kind[$name]=switch
        elif [[ "$item" =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]]; then
            name="${BASH_REMATCH[1]}"
            kind[$name]="${kind[$name]:-value}"
            value[$name]="${BASH_REMATCH[2]}"
        else
            ofa_die "launcher item '$item' is none of --flag=VALUE, --switch, NAME=VALUE, NEED:NAME=WHAT"
        fi
        [[ " ${names[*]} " == *" $name "* ]] || names+=("$name")
    done
    for name in "${names[@]}"; do  # the environment replaces the script's values
        [[ "${kind[$name]}" != switch && "$exported" == *" $name "* ]] && value[$name]="${!name}"
    done
    for name in ${value[ARGS]:-}; do  # positional arguments replace both
        (( $# )) && [[ "$1" != -* ]] || break
        value[$name]="$1"
        shift
    done
    extra=("$@")
    value[OFA_ROOT]="$OFA_ROOT"
    value[SCRIPT_DIR]="$(cd "$(dirname "$0")" && pwd)"
}

_ofa_expand() {  # TEXT: REPLY = TEXT with every {NAME} replaced by NAME's value (values may use others)
    local name rep depth=0
    REPLY="$1"
    while [[ "$REPLY" =~ \{([A-Z][A-Z0-9_]*)\} ]]; do
        name="${BASH_REMATCH[1]}"
        [[ -n "${value[$name]+x}" ]] || ofa_die "{$name} in '$1' is not a value of this script"
        (( depth++ < 50 )) || ofa_die "'$1' refers to itself"
        rep="${value[$name]}"
        REPLY="${REPLY//"{$name}"/"$rep"}"
    done
}

_ofa_sources() {  # NAME: REPLY = the names NAME's value is built from, e.g. "DATA_DIR DATASET_ROOT"
    local text="${value[$1]}" found="" name
    while [[ "$text" =~ \{([A-Z][A-Z0-9_]*)\} ]]; do
        name="${BASH_REMATCH[1]}"
        text="${text//"{$name}"/}"
        # positional arguments and fixed values are not for the user to set
        [[ "$name" == OFA_ROOT || "$name" == SCRIPT_DIR || " ${value[ARGS]:-} $found " == *" $name "* ]] && continue
        found+=" $name"
        text+=" ${value[$name]:-}"
    done
    REPLY="${found# }"
}

_ofa_require() {  # PATH WHAT NAME [HINT]: records PATH as missing (once), with what to set instead
    [[ -e "$1" || -n "${missing[$1]+x}" ]] && return 0
    _ofa_sources "$3"
    local built="${REPLY:+ (or ${REPLY// /, }, which it is built from)}"
    missing[$1]="$2 not found: $1
       set $3$built${4:+; $4}"
    missing_order+=("$1")
}

_ofa_machine() {  # sets num_gpus, launch (the launcher's words) and device_args from the environment
    if [[ -n "${NUM_GPUS:-}" ]]; then
        num_gpus="$NUM_GPUS"
    elif [[ -n "${CUDA_VISIBLE_DEVICES+x}" ]]; then  # narrows the visible set; empty or -1 hides every GPU
        local visible="${CUDA_VISIBLE_DEVICES//[[:space:]]/}"
        if [[ -z "$visible" || "$visible" == "-1" ]]; then num_gpus=0; else
            num_gpus=$(( $(tr -cd ',' <<<"$visible" | wc -c) + 1 )); fi
    elif command -v nvidia-smi >/dev/null 2>&1; then  # much faster than importing torch
        num_gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
    else
        num_gpus=0
    fi
    local nproc="${NPROC_PER_NODE:-${GPUS_PER_NODE:-$(( num_gpus > 0 ? num_gpus : 1 ))}}"
    nnodes="${NNODES:-${WORKER_CNT:-1}}"
    device_args=()
    case "${LAUNCHER:-torchrun}" in
        python)
            (( nproc * nnodes == 1 )) \
                || ofa_die "LAUNCHER=python runs one process; NPROC_PER_NODE=$nproc NNODES=$nnodes needs torchrun"
            launch=(python) ;;
        torchrun)
            launch=(torchrun "--nproc_per_node=$nproc" "--nnodes=$nnodes" "--node_rank=${NODE_RANK:-0}"
                    "--master_addr=${MASTER_ADDR:-127.0.0.1}" "--master_port=${value[MASTER_PORT]}")
            (( num_gpus > 0 )) || device_args+=(--distributed-backend=gloo) ;;
        *) ofa_die "LAUNCHER must be torchrun or python, got '$LAUNCHER'" ;;
    esac
    (( num_gpus > 0 )) || device_args+=(--cpu)
}

_ofa_sweep() {  # INDEX: one command for each combination of the GRID values from GRID name INDEX on
    local index="$1" name="${grid[$1]:-}" all one
    local -a points=()
    if [[ -z "$name" ]]; then
        _ofa_command
        return
    fi
    all="${value[$name]}"
    read -r -a points <<<"$all"
    (( ${#points[@]} )) || points=("")
    for one in "${points[@]}"; do
        value[$name]="$one"
        _ofa_sweep $(( index + 1 ))
    done
    value[$name]="$all"
}

_ofa_command() {  # appends the command of the current values to commands and logs
    local name text run="" run_dir="" log_file restore_file
    local -a args=() overrides=() fp16=() files=()
    _ofa_expand "${value[LOG_DIR]}"
    local log_dir="$REPLY"
    [[ "$log_dir" == /* ]] || log_dir="${value[SCRIPT_DIR]}/$log_dir"
    _ofa_expand "${value[DATA]:-}"
    local data="$REPLY"
    [[ -n "$data" ]] || ofa_die "no DATA: set DATA=train.tsv,valid.tsv"
    IFS=',' read -r -a files <<<"$data"
    for text in "${files[@]}"; do
        _ofa_require "$text" "data file" DATA "see dataset/README.md"
    done
    _ofa_expand "${value[CHECKPOINT_ROOT]}"
    local checkpoint_root="$REPLY/"
    for name in "${needs[@]}"; do
        _ofa_expand "${value[$name]:-}"
        text=""
        [[ "$REPLY" != "$checkpoint_root"* ]] || text="see the README's checkpoints section"
        [[ -z "$REPLY" ]] || _ofa_require "$REPLY" "${what[$name]} ($name)" "$name" "$text"
    done
    local override_names=" ${value[MODEL_OVERRIDES]:-} "
    for name in "${names[@]}"; do
        if [[ "${kind[$name]}" == switch ]]; then
            args+=("$name")
            continue
        fi
        _ofa_expand "${value[$name]}"
        OFA_VALUES[$name]="$REPLY"
        [[ -n "$REPLY" ]] || continue
        if [[ "${kind[$name]}" == flag && "$override_names" != *" $name "* ]]; then
            args+=("${flag[$name]}=$REPLY")
        fi
    done
    for name in ${value[MODEL_OVERRIDES]:-}; do  # in the order listed
        [[ -n "${value[$name]+x}" ]] || ofa_die "MODEL_OVERRIDES names $name, which is not a value of this script"
        [[ -z "${OFA_VALUES[$name]:-}" ]] || overrides+=("${name,,}=${OFA_VALUES[$name]}")
    done
    if [[ "$mode" == train ]]; then
        _ofa_expand "${value[RUN]:-}"
        run="$REPLY"
        if [[ -z "$run" ]]; then
            for name in "${grid[@]}"; do run+="${run:+_}${OFA_VALUES[$name]}"; done
        fi
        [[ -n "$run" ]] || ofa_die "no RUN name: set RUN or GRID"
        _ofa_expand "${value[SAVE_DIR]}"
        run_dir="$REPLY/$run"
        [[ "$run_dir" == /* ]] || run_dir="${value[SCRIPT_DIR]}/$run_dir"
        args+=(--save-dir="$run_dir")
        mkdir -p "$run_dir"  # in a dry run too (as the original scripts did before anything else)
        log_file="$log_dir/$run"
        (( nnodes == 1 )) || log_file+="_rank${NODE_RANK:-0}"
        restore_file="${OFA_VALUES[RESTORE_FILE]:-}"
        if [[ -n "${OFA_VALUES[RESUME]:-}" && -f "$run_dir/checkpoint_last.pt" ]]; then
            echo "resuming $run_dir/checkpoint_last.pt"
        elif [[ -n "${OFA_VALUES[RESUME]:-}" && -n "$restore_file" && ! -f "$restore_file" ]]; then
            echo "warning: $restore_file not found (see the README's checkpoints section): pretraining from scratch" >&2
        elif [[ -n "$restore_file" ]]; then
            _ofa_require "$restore_file" "checkpoint to restore (--restore-file)" RESTORE_FILE \
                "or RESTORE_FILE= to start from random weights; see the README's checkpoints section"
            args+=(--restore-file="$restore_file" --reset-optimizer --reset-dataloader --reset-meters)
        fi
        text="${OFA_VALUES[TOTAL_NUM_UPDATES]:-}"
        [[ -z "$text" ]] || args+=(--total-num-update="$text" --max-update="$text")
    else
        [[ -n "${OFA_VALUES[CHECKPOINT]:-}" ]] || ofa_die "no CHECKPOINT to evaluate: set CHECKPOINT=path/to.pt"
        _ofa_require "${OFA_VALUES[CHECKPOINT]}" "checkpoint to evaluate (--path)" CHECKPOINT \
            "see the README's checkpoints section"
        args+=(--path="${OFA_VALUES[CHECKPOINT]}")
        (( ${#overrides[@]} == 0 )) || args+=(--model-overrides="$(_ofa_model_overrides "${overrides[@]}")")
        log_file="$log_dir/${OFA_VALUES[LOG]:-evaluate}"
    fi
    (( num_gpus == 0 )) || read -r -a fp16 <<<"${OFA_VALUES[FP16]:-}"
    local -a env_extra=()
    read -r -a env_extra <<<"${EXTRA_ARGS:-}"  # whitespace-split, no globbing
    local -a cmd=("${launch[@]}" "$OFA_ROOT/$mode.py" "$data" "${args[@]}" "${fp16[@]}" "${device_args[@]}"
                  "${env_extra[@]}" "${extra[@]}")
    commands+=("$(printf '%q ' "${cmd[@]}")")
    logs+=("$log_file.log")
}

_ofa_model_overrides() {  # KEY=VALUE...: the dict literal of --model-overrides; True/False/None, integers stay literals
    local pair key val out=""
    for pair in "$@"; do
        key="${pair%%=*}"
        val="${pair#*=}"
        case "$val" in
            True | False | None) ;;
            *[!0-9]*) val="\"$val\"" ;;
        esac
        out+="${out:+,}\"$key\":$val"
    done
    echo "{$out}"
}

_ofa_run() {  # train|evaluate ITEMS... [-- ARGS...]
    local mode="$1" i status
    shift
    local -A value=() kind=() flag=() what=() missing=()
    local -a names=() needs=() extra=() grid=() commands=() logs=() missing_order=() launch=() device_args=()
    local num_gpus nnodes
    declare -gA OFA_VALUES=()
    if [[ "$mode" == train ]]; then
        _ofa_parse "${_OFA_COMMON_ITEMS[@]}" "${_OFA_TRAIN_ITEMS[@]}" "$@"
    else
        _ofa_parse "${_OFA_COMMON_ITEMS[@]}" "${_OFA_EVALUATE_ITEMS[@]}" "$@"
    fi
    _ofa_machine
    [[ "$mode" == train ]] && read -r -a grid <<<"${value[GRID]:-}"
    _ofa_sweep 0
    declare -gA _OFA_REPORTED
    for i in "${missing_order[@]}"; do  # once per script (evaluate_refcoco.sh calls ofa_evaluate per data set)
        [[ -n "${_OFA_REPORTED[$i]:-}" ]] || echo "error: ${missing[$i]}" >&2
        _OFA_REPORTED[$i]=1
    done
    if [[ -n "${OFA_DRY_RUN:-}" ]]; then
        printf '%s\n' "${commands[@]% }"
        (( ${#missing_order[@]} == 0 ))
        return
    fi
    (( ${#missing_order[@]} == 0 )) || exit 1
    for i in "${!commands[@]}"; do
        local -a cmd=()
        eval "cmd=(${commands[$i]})"
        mkdir -p "$(dirname "${logs[$i]}")"
        printf '# %s %s\n# %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$(hostname)" "${commands[$i]% }" \
            | tee -a "${logs[$i]}"
        "${cmd[@]}" 2>&1 | tee -a "${logs[$i]}"
        status="${PIPESTATUS[0]}"
        (( status == 0 )) || ofa_die "$mode.py exited with $status (log: ${logs[$i]})"
    done
}
