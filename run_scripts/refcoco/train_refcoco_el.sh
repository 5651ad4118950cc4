#!/usr/bin/env bash
# Encouraging-loss variant of train_refcoco.sh (original: run_scripts/refcoco/train_refcoco_el.sh): criterion
# adjust_label_smoothed_encouraging_loss with --log-end 0.75, runs named <max_epoch>_<lr>_<patch_image_size>_el0.75.
# The refcocoplus/refcocog _el scripts are variants of this one.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco.sh"

train_refcoco_el() {  # [ITEMS...] [-- train.py flags]
    train_refcoco --criterion=adjust_label_smoothed_encouraging_loss --log-end=0.75 \
        RUN={MAX_EPOCH}_{LR}_{PATCH_IMAGE_SIZE}_el{LOG_END} "$@"
}
ofa_main train_refcoco_el -- "$@"
