#!/usr/bin/env bash
# Variant of evaluate_vqa_beam.sh for a checkpoint finetuned with --unconstrained-training
# (UNCONSTRAINED_TRAINING=1 VAL_INFERENCE_TYPE=beamsearch bash train_vqa_distributed.sh): no answer set, the answer
# is free text. Same flags as the original run_scripts/vqa/evaluate_vqa_unconstrained.sh, which takes the checkpoint
# as its second argument. Writes $RESULT_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_unconstrained.sh val|test CHECKPOINT [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8082}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

if (( $# > 1 )) && [[ "$2" != -* ]]; then
    CHECKPOINT="$2"
    set -- "$1" "${@:3}"
fi
[[ -n "${CHECKPOINT:-}" ]] || ofa_die "give the unconstrainedly finetuned checkpoint:" \
    "bash evaluate_vqa_unconstrained.sh val|test path/to/checkpoint.pt (or set CHECKPOINT)"
ANSWER_SET=0
RUN=unconstrained
source "$SCRIPT_DIR/evaluate_vqa_beam.sh"
