#!/usr/bin/env bash
# GLUE MNLI finetuning of OFA-Large (original: run_scripts/glue/train_mnli.sh): train_glue.sh with the mnli row of its table.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_glue.sh"

ofa_main train_glue mnli -- "$@"
