#!/usr/bin/env bash
# BitFit variant of train_refcoco.sh (original: run_scripts/refcoco/train_refcoco_bitfit.sh): only the bias terms
# train; batch size 16, 100 epochs, 480 px, lr swept over {0.03, 5e-5, 1e-4}.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco.sh"

ofa_main train_refcoco --batch-size=16 --max-epoch=100 --patch-image-size=480 "--lr=0.03 5e-5 1e-4" --bitfit -- "$@"
