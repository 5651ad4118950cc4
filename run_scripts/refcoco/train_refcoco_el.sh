#!/usr/bin/env bash
# RefCOCO finetuning with the encouraging loss, --log-end 0.75 (original: run_scripts/refcoco/train_refcoco_el.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CRITERION="${CRITERION:-adjust_label_smoothed_encouraging_loss}"
LOG_END="${LOG_END:-0.75}"
RUN_SUFFIX="${RUN_SUFFIX:-_el${LOG_END}}"
source "$SCRIPT_DIR/train_refcoco.sh"
