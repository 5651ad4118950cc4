#!/usr/bin/env bash
# Settings shared by the image_gen scripts (sourced after ../common.sh; do not run it).
#   DATA_DIR            COCO image-code TSVs (default dataset/coco_image_gen_data)
#   VQGAN_MODEL_PATH    taming VQGAN checkpoint   (default checkpoints/vqgan/last.ckpt)
#   VQGAN_CONFIG_PATH   taming VQGAN config       (default checkpoints/vqgan/model.yaml)
#   CLIP_MODEL_PATH     OpenAI CLIP ViT-B/16 file (default checkpoints/clip/ViT-B-16.pt)
# The three model files come with the original's image_gen_large_best.zip (vqgan/, clip/).
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/coco_image_gen_data}"
SELECTED_COLS="${SELECTED_COLS:-0,2,1}"
VQGAN_MODEL_PATH="${VQGAN_MODEL_PATH:-$CHECKPOINT_ROOT/vqgan/last.ckpt}"
VQGAN_CONFIG_PATH="${VQGAN_CONFIG_PATH:-$CHECKPOINT_ROOT/vqgan/model.yaml}"
CLIP_MODEL_PATH="${CLIP_MODEL_PATH:-$CHECKPOINT_ROOT/clip/ViT-B-16.pt}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-64}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-1024}"
NUM_BINS="${NUM_BINS:-1000}"
CODE_IMAGE_SIZE="${CODE_IMAGE_SIZE:-256}"
# the <code_i> ids of the 59457-symbol dictionary: generation writes only image codes
CONSTRAINT_RANGE="${CONSTRAINT_RANGE:-50265,58457}"
# validation: 24 sampled images per caption (top-k 256), exactly 1024 codes each
default EVAL_ARGS '{"beam":24,"min_len":1024,"max_len_a":0,"max_len_b":1024,"sampling_topk":256,"temperature":1.0}'

IMAGE_GEN_FLAGS=(--num-bins="$NUM_BINS" --code-image-size="$CODE_IMAGE_SIZE" --constraint-range="$CONSTRAINT_RANGE"
    --vqgan-model-path="$VQGAN_MODEL_PATH" --vqgan-config-path="$VQGAN_CONFIG_PATH" --clip-model-path="$CLIP_MODEL_PATH")

require_image_gen_models() {
    local hint="from the original's image_gen_large_best.zip (see the README's checkpoints section)"
    require_file "$VQGAN_MODEL_PATH" "VQGAN checkpoint (VQGAN_MODEL_PATH)" "$hint"
    require_file "$VQGAN_CONFIG_PATH" "VQGAN config (VQGAN_CONFIG_PATH)" "$hint"
    require_file "$CLIP_MODEL_PATH" "CLIP ViT-B/16 weights (CLIP_MODEL_PATH)" "$hint"
}
