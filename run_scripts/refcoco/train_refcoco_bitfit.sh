#!/usr/bin/env bash
# RefCOCO BitFit: only bias terms train (original: run_scripts/refcoco/train_refcoco_bitfit.sh;
# lr swept over {0.03, 5e-5, 1e-4}, 100 epochs).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

BATCH_SIZE="${BATCH_SIZE:-16}"
MAX_EPOCH="${MAX_EPOCH:-100}"
LR="${LR:-0.03 5e-5 1e-4}"  # the original sweeps these
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
TUNING_FLAGS="${TUNING_FLAGS:---bitfit}"
source "$SCRIPT_DIR/train_refcoco.sh"
