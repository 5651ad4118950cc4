#!/usr/bin/env bash
# RefCOCOg finetuning with the encouraging loss (original: run_scripts/refcoco/train_refcocog_el.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6052}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

REFCOCO_DATASET="${REFCOCO_DATASET:-refcocog}"
CRITERION="${CRITERION:-adjust_label_smoothed_encouraging_loss}"
LOG_END="${LOG_END:-0.75}"
RUN_SUFFIX="${RUN_SUFFIX:-_el${LOG_END}}"
source "$SCRIPT_DIR/train_refcoco.sh"
