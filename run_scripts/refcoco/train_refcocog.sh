#!/usr/bin/env bash
# RefCOCOg variant of train_refcoco.sh (original: run_scripts/refcoco/train_refcocog.sh): the refcocog data; port 6052.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco.sh"

ofa_main train_refcoco MASTER_PORT=6052 REFCOCO_DATASET=refcocog -- "$@"
