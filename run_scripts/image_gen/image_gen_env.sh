#!/usr/bin/env bash
# Launcher items shared by the image_gen scripts (source it; see run_scripts/common.sh for the item syntax):
#   DATA_DIR            COCO image-code TSVs (default dataset/coco_image_gen_data)
#   VQGAN_MODEL_PATH    taming VQGAN checkpoint   (default checkpoints/vqgan/last.ckpt)
#   VQGAN_CONFIG_PATH   taming VQGAN config       (default checkpoints/vqgan/model.yaml)
#   CLIP_MODEL_PATH     OpenAI CLIP ViT-B/16 file (default checkpoints/clip/ViT-B-16.pt)
# The three model files come with the original's image_gen_large_best.zip (vqgan/, clip/). Generation writes only
# image codes: CONSTRAINT_RANGE is the <code_i> ids of the 59457-symbol dictionary; 256 px images are 1024 codes.
IMAGE_GEN_ITEMS=(DATA_DIR={DATASET_ROOT}/coco_image_gen_data --selected-cols=0,2,1 --task=image_gen
    --code-image-size=256 --constraint-range=50265,58457
    --vqgan-model-path={CHECKPOINT_ROOT}/vqgan/last.ckpt "NEED:VQGAN_MODEL_PATH=VQGAN checkpoint"
    --vqgan-config-path={CHECKPOINT_ROOT}/vqgan/model.yaml "NEED:VQGAN_CONFIG_PATH=VQGAN config"
    --clip-model-path={CHECKPOINT_ROOT}/clip/ViT-B-16.pt "NEED:CLIP_MODEL_PATH=CLIP ViT-B/16 weights")
# validation: 24 sampled images per caption (top-k 256), exactly 1024 codes each
IMAGE_GEN_EVAL_ARGS='{"beam":24,"min_len":1024,"max_len_a":0,"max_len_b":1024,"sampling_topk":256,"temperature":1.0}'
