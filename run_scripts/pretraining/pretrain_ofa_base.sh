#!/usr/bin/env bash
# OFA-Base variant of pretrain_ofa_large.sh (original: run_scripts/pretraining/pretrain_ofa_base.sh): ofa_base from
# ofa_base.pt; port 1052.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/pretrain_ofa_large.sh"

ofa_main pretrain_ofa_large MASTER_PORT=1052 --arch=ofa_base RESTORE_FILE={CHECKPOINT_ROOT}/ofa_base.pt -- "$@"
