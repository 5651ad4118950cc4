#!/usr/bin/env bash
# GLUE MRPC finetuning of OFA-Large (original: run_scripts/glue/train_mrpc.sh): train_glue.sh with the mrpc row of its table.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_glue.sh"

ofa_main train_glue mrpc -- "$@"
