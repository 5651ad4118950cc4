#!/usr/bin/env bash
# OFA-Huge variant of train_caption_stage1.sh (not in the original), sharded over the GPUs with
# --ddp-backend fully_sharded (FSDP2: parameters, gradients and Adam states split across the ranks), bfloat16
# instead of fp16 on GPUs; from ofa_huge.pt; port 1052. Usage: NPROC_PER_NODE=8 bash train_caption_stage1_huge_fsdp.sh
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_caption_stage1.sh"

train_caption_stage1_huge_fsdp() {  # [ITEMS...] [-- train.py flags]
    train_caption_stage1 MASTER_PORT=1052 LOG_DIR=stage1_huge_fsdp_logs SAVE_DIR=stage1_huge_fsdp_checkpoints \
        --arch=ofa_huge RESTORE_FILE={CHECKPOINT_ROOT}/ofa_huge.pt --ddp-backend=fully_sharded FP16=--bf16 "$@"
}
ofa_main train_caption_stage1_huge_fsdp -- "$@"
