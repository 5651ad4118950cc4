#!/usr/bin/env bash
# GLUE SST2 finetuning of OFA-Large (original: run_scripts/glue/train_sst2.sh); values in train_glue.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
GLUE_TASK=sst2 source "$(dirname "${BASH_SOURCE[0]}")/train_glue.sh"
