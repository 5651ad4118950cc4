#!/usr/bin/env bash
# RefCOCO+ variant of train_refcoco_el.sh (original: run_scripts/refcoco/train_refcocoplus_el.sh): the refcocoplus
# data; port 6053.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco_el.sh"

ofa_main train_refcoco_el MASTER_PORT=6053 REFCOCO_DATASET=refcocoplus -- "$@"
