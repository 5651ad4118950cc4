#!/usr/bin/env bash
# OFA-Base variant of evaluate_vqa_beam.sh (original: run_scripts/vqa/evaluate_vqa_beam_base.sh): evaluates
# vqa_base_best.pt with valid_batch_size 20 (a model override); port 8182. Usage: bash evaluate_vqa_beam_base.sh val|test [flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_vqa_beam.sh"

ofa_main evaluate_vqa_beam MASTER_PORT=8182 CHECKPOINT={CHECKPOINT_ROOT}/vqa_base_best.pt --valid-batch-size=20 \
    MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS ANS2LABEL_FILE VALID_BATCH_SIZE" -- "$@"
