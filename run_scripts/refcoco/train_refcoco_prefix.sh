#!/usr/bin/env bash
# RefCOCO prefix (prompt) tuning: only encoder/decoder prompts of length 100 train; the original sweeps lr over
# {0.03, 5e-5, 1e-4} for 100 epochs (run_scripts/refcoco/train_refcoco_prefix.sh). PROMPT_PROJECTION=1 adds
# --encoder-prompt-projection --decoder-prompt-projection (prompts through an MLP).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

BATCH_SIZE="${BATCH_SIZE:-16}"
MAX_EPOCH="${MAX_EPOCH:-100}"
LR="${LR:-0.03 5e-5 1e-4}"  # the original sweeps these
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
PROMPT_TYPE="${PROMPT_TYPE:-prefix}"
ENCODER_PROMPT_LENGTH="${ENCODER_PROMPT_LENGTH:-100}"
DECODER_PROMPT_LENGTH="${DECODER_PROMPT_LENGTH:-100}"
TUNING_FLAGS="${TUNING_FLAGS:---encoder-prompt --decoder-prompt --encoder-prompt-type=$PROMPT_TYPE --decoder-prompt-type=$PROMPT_TYPE --encoder-prompt-length=$ENCODER_PROMPT_LENGTH --decoder-prompt-length=$DECODER_PROMPT_LENGTH${PROMPT_PROJECTION:+ --encoder-prompt-projection --decoder-prompt-projection}}"
source "$SCRIPT_DIR/train_refcoco.sh"
