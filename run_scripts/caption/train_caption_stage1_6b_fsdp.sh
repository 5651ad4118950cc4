#!/usr/bin/env bash
# OFA-6B variant of train_caption_stage1_huge_fsdp.sh: ofa_6b from ModelScope's weights converted with
# scripts/convert_checkpoint.py to-fairseq (ofa_6b.pt), 4 sentences per GPU x 8 accumulated; port 1053.
# README (Sharded data parallel): memory per GPU on 8 GPUs.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_caption_stage1_huge_fsdp.sh"

ofa_main train_caption_stage1_huge_fsdp MASTER_PORT=1053 LOG_DIR=stage1_6b_fsdp_logs \
    SAVE_DIR=stage1_6b_fsdp_checkpoints --arch=ofa_6b RESTORE_FILE={CHECKPOINT_ROOT}/ofa_6b.pt \
    --batch-size=4 --update-freq=8 -- "$@"
