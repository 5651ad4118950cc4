#!/usr/bin/env bash
# OFA-Base variant of evaluate_refcoco.sh: <dataset>_base_best.pt checkpoints (original: evaluate_refcoco_base.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6091}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

MODEL_SIZE="${MODEL_SIZE:-base}"
source "$SCRIPT_DIR/evaluate_refcoco.sh"
