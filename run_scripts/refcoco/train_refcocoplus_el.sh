#!/usr/bin/env bash
# RefCOCO+ finetuning with the encouraging loss (original: run_scripts/refcoco/train_refcocoplus_el.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6053}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

REFCOCO_DATASET="${REFCOCO_DATASET:-refcocoplus}"
CRITERION="${CRITERION:-adjust_label_smoothed_encouraging_loss}"
LOG_END="${LOG_END:-0.75}"
RUN_SUFFIX="${RUN_SUFFIX:-_el${LOG_END}}"
source "$SCRIPT_DIR/train_refcoco.sh"
