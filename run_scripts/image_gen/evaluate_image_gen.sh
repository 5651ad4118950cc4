#!/usr/bin/env bash
# Generate images for the COCO test captions (24 samples each, CLIP-reranked; the best goes to
# $GEN_IMAGE_PATH/top1), then compute the Inception Score and FID of the top-1 images.
# Same flags as the original run_scripts/image_gen/evaluate_image_gen.sh. FID and IS need thousands of images to
# mean anything; a sampled subset of the full test split is fine for a quick look.
#   INCEPTION_WEIGHTS   local FID Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth); never downloaded
#   FID_REFERENCE       reference statistics .npz (the original's gt_stat.npz: mu, sigma) or a folder of images
#   SKIP_METRICS=1      generate only
# Usage (from the repo root or run_scripts/image_gen): bash evaluate_image_gen.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-4081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$SCRIPT_DIR/image_gen_env.sh"

DATA="${DATA:-$DATA_DIR/coco_vqgan_full_test.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/image_gen_large_best.pt}"
GEN_IMAGE_PATH="${GEN_IMAGE_PATH:-$RESULTS_ROOT/image_gen}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SPLIT="${SPLIT:-test}"
INCEPTION_WEIGHTS="${INCEPTION_WEIGHTS:-$CHECKPOINT_ROOT/inception/pt_inception-2015-12-05-6726825d.pth}"
FID_REFERENCE="${FID_REFERENCE:-$DATA_DIR/gt_stat.npz}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"
require_image_gen_models
if [[ -z "${SKIP_METRICS:-}" ]]; then
    # checked before the long generation run, not after it
    require_file "$INCEPTION_WEIGHTS" "FID Inception-v3 weights (INCEPTION_WEIGHTS)" \
        "the pt_inception-2015-12-05-6726825d.pth file of pytorch-fid / torch-fidelity; or SKIP_METRICS=1 to only generate"
    [[ -e "$FID_REFERENCE" ]] || ofa_die "FID reference not found: $FID_REFERENCE
       the original's gt_stat.npz (mu, sigma of the COCO test images) or a folder of reference images; or SKIP_METRICS=1"
fi

ofa_evaluate "$LOG_DIR/evaluate_image_gen_${SPLIT}.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=image_gen \
    --batch-size=1 \
    --log-format=simple --log-interval=1 \
    --seed=42 \
    --gen-subset="$SPLIT" \
    --beam=24 \
    --min-len=1024 \
    --max-len-a=0 \
    --max-len-b=1024 \
    --sampling-topk=256 \
    --temperature=1.0 \
    --code-image-size="$CODE_IMAGE_SIZE" \
    --constraint-range="$CONSTRAINT_RANGE" \
    $(cuda_only --fp16) \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS" \
        clip_model_path="$CLIP_MODEL_PATH" vqgan_model_path="$VQGAN_MODEL_PATH" \
        vqgan_config_path="$VQGAN_CONFIG_PATH" gen_images_path="$GEN_IMAGE_PATH")" \
    "$@"

if [[ -n "${SKIP_METRICS:-}" || -n "${OFA_DRY_RUN:-}" ]]; then
    echo "images: $GEN_IMAGE_PATH (top1/ holds the best image of each caption)"
    exit 0
fi
# Inception Score (1 split, as the original) and FID of the top-1 images
python -m utils.image_gen_metrics --path1 "$GEN_IMAGE_PATH/top1" --path2 "$FID_REFERENCE" \
    --inception-weights "$INCEPTION_WEIGHTS" --batch-size "${METRICS_BATCH_SIZE:-128}" \
    | tee "$GEN_IMAGE_PATH/metrics.json"
