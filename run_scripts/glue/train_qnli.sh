#!/usr/bin/env bash
# GLUE QNLI finetuning of OFA-Large (original: run_scripts/glue/train_qnli.sh); values in train_glue.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
GLUE_TASK=qnli source "$(dirname "${BASH_SOURCE[0]}")/train_glue.sh"
