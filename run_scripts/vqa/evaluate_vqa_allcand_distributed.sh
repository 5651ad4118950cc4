#!/usr/bin/env bash
# Several-node variant of evaluate_vqa_allcand.sh (original: run_scripts/vqa/evaluate_vqa_allcand_distributed.sh):
# batch size 4 instead of 8 and --valid-batch-size 20; port 8216. On every node set NNODES, NODE_RANK, MASTER_ADDR
# (and NPROC_PER_NODE); the rank-0 node writes the result JSON.
# Usage: bash evaluate_vqa_allcand_distributed.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_vqa_allcand.sh"

evaluate_vqa_allcand_distributed() {  # [ITEMS...] [-- SPLIT evaluate.py flags]
    evaluate_vqa_allcand MASTER_PORT=8216 --batch-size=4 --valid-batch-size=20 "$@"
}
ofa_main evaluate_vqa_allcand_distributed -- "$@"
