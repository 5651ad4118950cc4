#!/usr/bin/env bash
# Stage 1 with the encouraging loss and drop-best (original: run_scripts/caption/train_caption_stage1_el_db.sh):
# as train_caption_stage1_el.sh, plus --drop-best-ratio 0.05 --drop-best-after 2500.
# The original's criterion accepts --drop-best-ratio/--drop-best-after but never applies them, so its runs
# trained on every token; ours drops the best 5% of tokens after 2500 updates (DROP_BEST_RATIO=0 matches the original).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CRITERION="${CRITERION:-adjust_label_smoothed_encouraging_loss}"
DROP_WORST_RATIO="${DROP_WORST_RATIO:-0.05}"
DROP_BEST_RATIO="${DROP_BEST_RATIO:-0.05}"
DROP_BEST_AFTER="${DROP_BEST_AFTER:-2500}"
LOG_END="${LOG_END:-0.75}"
RUN_INFIX="${RUN_INFIX:-dwdb}"
RUN_SUFFIX="${RUN_SUFFIX:-_el${LOG_END}_}"
source "$SCRIPT_DIR/train_caption_stage1.sh"
