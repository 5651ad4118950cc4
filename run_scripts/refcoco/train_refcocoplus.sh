#!/usr/bin/env bash
# RefCOCO+ variant of train_refcoco.sh (original: run_scripts/refcoco/train_refcocoplus.sh): the refcocoplus data;
# port 6053.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco.sh"

ofa_main train_refcoco MASTER_PORT=6053 REFCOCO_DATASET=refcocoplus -- "$@"
