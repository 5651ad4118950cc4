#!/usr/bin/env bash
# RefCOCOg finetuning of OFA-Large (original: run_scripts/refcoco/train_refcocog.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6052}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

REFCOCO_DATASET="${REFCOCO_DATASET:-refcocog}"
source "$SCRIPT_DIR/train_refcoco.sh"
