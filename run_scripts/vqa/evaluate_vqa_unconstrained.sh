#!/usr/bin/env bash
# Variant of evaluate_vqa_beam.sh for a checkpoint finetuned with --unconstrained-training
# (UNCONSTRAINED_TRAINING=1 VAL_INFERENCE_TYPE=beamsearch bash train_vqa_distributed.sh), as the original
# run_scripts/vqa/evaluate_vqa_unconstrained.sh: the checkpoint is the second argument, no answer set (the answer is
# free text), results in RESULTS_ROOT/vqa_<split>_unconstrained.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_unconstrained.sh val|test CHECKPOINT [flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/evaluate_vqa_beam.sh"

[[ "${2:-}" == [!-]* || -n "${CHECKPOINT:-}" ]] || ofa_die "give the unconstrainedly finetuned checkpoint:" \
    "bash evaluate_vqa_unconstrained.sh val|test path/to/checkpoint.pt (or set CHECKPOINT)"
ofa_main evaluate_vqa_beam ARGS="SPLIT CHECKPOINT" INFERENCE=unconstrained ANS2LABEL_FILE= -- "$@"
