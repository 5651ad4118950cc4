#!/usr/bin/env bash
# OFA-Base variant of train_refcoco.sh (original: run_scripts/refcoco/train_refcoco_base.sh): ofa_base from
# ofa_base.pt, lr 5e-5 instead of 3e-5, drop-path 0.1 instead of 0.2; port 6061. The refcocoplus/refcocog _base
# scripts are variants of this one.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco.sh"

train_refcoco_base() {  # [ITEMS...] [-- train.py flags]
    train_refcoco MASTER_PORT=6061 --arch=ofa_base RESTORE_FILE={CHECKPOINT_ROOT}/ofa_base.pt --lr=5e-5 \
        --encoder-drop-path-rate=0.1 --decoder-drop-path-rate=0.1 "$@"
}
ofa_main train_refcoco_base -- "$@"
