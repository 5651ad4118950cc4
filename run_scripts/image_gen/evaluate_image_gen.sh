#!/usr/bin/env bash
# Generate images for the COCO test captions (24 samples each, CLIP-reranked; the best goes to GEN_IMAGES_PATH/top1),
# then compute the Inception Score and FID of the top-1 images; the flags of the original
# run_scripts/image_gen/evaluate_image_gen.sh. FID and IS need thousands of images to mean anything; a sampled subset
# of the full test split is fine for a quick look.
#   INCEPTION_WEIGHTS   local FID Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth); never downloaded
#   FID_REFERENCE       reference statistics .npz (the original's gt_stat.npz: mu, sigma) or a folder of images
#   SKIP_METRICS=1      generate only;  METRICS_BATCH_SIZE (default 128) for the IS/FID pass
# Usage (from the repo root or run_scripts/image_gen): bash evaluate_image_gen.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/image_gen_env.sh"

evaluate_image_gen() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    local metrics=()  # checked before the long generation run, not after it
    [[ -n "${SKIP_METRICS:-}" ]] || metrics=("NEED:INCEPTION_WEIGHTS=FID Inception-v3 weights"
        "NEED:FID_REFERENCE=FID reference statistics or image folder")
    ofa_evaluate MASTER_PORT=4081 "${IMAGE_GEN_ITEMS[@]}" DATA={DATA_DIR}/coco_vqgan_full_test.tsv \
        CHECKPOINT={CHECKPOINT_ROOT}/image_gen_large_best.pt GEN_IMAGES_PATH={RESULTS_ROOT}/image_gen SPLIT=test \
        LOG=evaluate_image_gen_{SPLIT} INCEPTION_WEIGHTS={CHECKPOINT_ROOT}/inception/pt_inception-2015-12-05-6726825d.pth \
        FID_REFERENCE={DATA_DIR}/gt_stat.npz "${metrics[@]}" MODEL_OVERRIDES="DATA BPE_DIR SELECTED_COLS \
        CLIP_MODEL_PATH VQGAN_MODEL_PATH VQGAN_CONFIG_PATH GEN_IMAGES_PATH" --batch-size=1 --log-interval=1 --seed=42 \
        --gen-subset={SPLIT} --beam=24 --min-len=1024 --max-len-a=0 --max-len-b=1024 --sampling-topk=256 \
        --temperature=1.0 "$@" || return
    local images="${OFA_VALUES[GEN_IMAGES_PATH]}"
    if [[ -n "${SKIP_METRICS:-}" || -n "${OFA_DRY_RUN:-}" ]]; then
        echo "images: $images (top1/ holds the best image of each caption)"
        return 0
    fi
    # Inception Score (1 split, as the original) and FID of the top-1 images
    python -m utils.image_gen_metrics --path1 "$images/top1" --path2 "${OFA_VALUES[FID_REFERENCE]}" \
        --inception-weights "${OFA_VALUES[INCEPTION_WEIGHTS]}" --batch-size "${METRICS_BATCH_SIZE:-128}" \
        | tee "$images/metrics.json"
}
ofa_main evaluate_image_gen -- "$@"
