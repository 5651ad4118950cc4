#!/usr/bin/env bash
# Prefix (prompt) tuning variant of train_refcoco.sh (original: run_scripts/refcoco/train_refcoco_prefix.sh): only
# encoder/decoder prompts of length 100 train; batch size 16, 100 epochs, 480 px, lr swept over {0.03, 5e-5, 1e-4}.
# PROMPT_PROJECTION=1 adds --encoder-prompt-projection --decoder-prompt-projection (prompts through an MLP).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/train_refcoco.sh"

train_refcoco_prefix() {  # [ITEMS...] [-- train.py flags]
    local projection=()
    [[ -z "${PROMPT_PROJECTION:-}" ]] || projection=(--encoder-prompt-projection --decoder-prompt-projection)
    train_refcoco --batch-size=16 --max-epoch=100 --patch-image-size=480 "--lr=0.03 5e-5 1e-4" \
        --encoder-prompt --decoder-prompt --encoder-prompt-type=prefix --decoder-prompt-type=prefix \
        --encoder-prompt-length=100 --decoder-prompt-length=100 "${projection[@]}" "$@"
}
ofa_main train_refcoco_prefix -- "$@"
