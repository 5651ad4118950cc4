#!/usr/bin/env bash
# RefCOCO+ variant of train_refcoco_base.sh (original: run_scripts/refcoco/train_refcocoplus_base.sh): the
# refcocoplus data; port 6063.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco_base.sh"

ofa_main train_refcoco_base MASTER_PORT=6063 REFCOCO_DATASET=refcocoplus -- "$@"
