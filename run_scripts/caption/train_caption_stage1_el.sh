#!/usr/bin/env bash
# Stage 1 with the encouraging loss (original: run_scripts/caption/train_caption_stage1_el.sh):
# criterion adjust_label_smoothed_encouraging_loss, --log-end 0.75, drop-worst ratio 0.05 instead of 0.2.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CRITERION="${CRITERION:-adjust_label_smoothed_encouraging_loss}"
DROP_WORST_RATIO="${DROP_WORST_RATIO:-0.05}"
LOG_END="${LOG_END:-0.75}"
RUN_SUFFIX="${RUN_SUFFIX:-_el${LOG_END}_}"
source "$SCRIPT_DIR/train_caption_stage1.sh"
