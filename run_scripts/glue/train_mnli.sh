#!/usr/bin/env bash
# GLUE MNLI finetuning of OFA-Large (original: run_scripts/glue/train_mnli.sh); values in train_glue.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
GLUE_TASK=mnli source "$(dirname "${BASH_SOURCE[0]}")/train_glue.sh"
