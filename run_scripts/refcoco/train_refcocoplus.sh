#!/usr/bin/env bash
# RefCOCO+ finetuning of OFA-Large (original: run_scripts/refcoco/train_refcocoplus.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6053}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

REFCOCO_DATASET="${REFCOCO_DATASET:-refcocoplus}"
source "$SCRIPT_DIR/train_refcoco.sh"
