#!/usr/bin/env bash
# OFA-Base variant of evaluate_vqa_allcand_distributed.sh (original: run_scripts/vqa/evaluate_vqa_base_allcand_distributed.sh):
# vqa_base_best.pt, batch size 4, --valid-batch-size 20. On every node set NNODES, NODE_RANK, MASTER_ADDR (and
# NPROC_PER_NODE). Usage: bash evaluate_vqa_base_allcand_distributed.sh val|test
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8316}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/vqa_base_best.pt}"
source "$SCRIPT_DIR/evaluate_vqa_allcand_distributed.sh"
