#!/usr/bin/env bash
# OFA-Base variant of train_snli_ve.sh (original: run_scripts/snli_ve/train_snli_ve_base.sh): ofa_base from
# ofa_base.pt, 5 epochs instead of 6, lr 5e-5 instead of 2e-5, drop-path 0.1 instead of 0.2; port 7061.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_snli_ve.sh"

ofa_main train_snli_ve MASTER_PORT=7061 --arch=ofa_base RESTORE_FILE={CHECKPOINT_ROOT}/ofa_base.pt --max-epoch=5 \
    --lr=5e-5 --encoder-drop-path-rate=0.1 --decoder-drop-path-rate=0.1 -- "$@"
