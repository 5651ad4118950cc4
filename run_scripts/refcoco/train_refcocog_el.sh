#!/usr/bin/env bash
# RefCOCOg variant of train_refcoco_el.sh (original: run_scripts/refcoco/train_refcocog_el.sh): the refcocog data;
# port 6052.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco_el.sh"

ofa_main train_refcoco_el MASTER_PORT=6052 REFCOCO_DATASET=refcocog -- "$@"
