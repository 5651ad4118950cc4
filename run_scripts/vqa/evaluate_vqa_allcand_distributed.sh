#!/usr/bin/env bash
# All-candidate VQA evaluation over several nodes (original: run_scripts/vqa/evaluate_vqa_allcand_distributed.sh):
# batch size 4, --valid-batch-size 20. On every node set NNODES, NODE_RANK, MASTER_ADDR (and NPROC_PER_NODE);
# the result JSON is written by the rank-0 node. Usage: bash evaluate_vqa_allcand_distributed.sh val|test
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8216}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

BATCH_SIZE="${BATCH_SIZE:-4}"
VALID_BATCH_SIZE="${VALID_BATCH_SIZE:-20}"
source "$SCRIPT_DIR/evaluate_vqa_allcand.sh"
