#!/usr/bin/env bash
# RefCOCOg variant of train_refcoco_base.sh (original: run_scripts/refcoco/train_refcocog_base.sh): the refcocog
# data, 12 epochs instead of 10; port 6062.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco_base.sh"

ofa_main train_refcoco_base MASTER_PORT=6062 REFCOCO_DATASET=refcocog --max-epoch=12 -- "$@"
