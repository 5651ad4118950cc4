#!/usr/bin/env bash
# GLUE SST2 finetuning of OFA-Large (original: run_scripts/glue/train_sst2.sh): train_glue.sh with the sst2 row of its table.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_glue.sh"

ofa_main train_glue sst2 -- "$@"
