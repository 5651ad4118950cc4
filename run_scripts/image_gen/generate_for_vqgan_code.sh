#!/usr/bin/env bash
# Turn images into VQGAN codes: the input rows of text-to-image training (scripts/generate_vqgan_code.py), with the
# options of the original run_scripts/image_gen/generate_for_vqgan_code.sh.
#
# text-image pairs (SELECTED_COLS=0,1,2,3):
#   input   uniq-id, image-id, image base64, text     162365  12455  /9j/4AAQSkZJ....UCP/2Q==  two people in an ocean...
#   output  uniq-id, image-id, text, code             162365  12455  two people in an ocean...  6288 4495 4139 ...
# images only (SELECTED_COLS=0,1):
#   input   image-id, image base64                    12455  /9j/4AAQSkZJ....UCP/2Q==
#   output  image-id, code                            12455  6288 4495 4139 ...
# Environment: INPUT_FILE, OUTPUT_FILE, SELECTED_COLS, CODE_IMAGE_SIZE (256: 1024 codes), BATCH_SIZE,
# VQGAN_MODEL_PATH, VQGAN_CONFIG_PATH, CHECKPOINT_ROOT. Usage: bash generate_for_vqgan_code.sh [extra flags]
# (Not a train.py/evaluate.py command, so it does not go through ofa_train/ofa_evaluate.)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

generate_for_vqgan_code() {  # [extra scripts/generate_vqgan_code.py flags]
    local here checkpoints="${CHECKPOINT_ROOT:-$OFA_ROOT/checkpoints}" path missing=0
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    local input="${INPUT_FILE:-$here/custom_data.txt}" vqgan="${VQGAN_MODEL_PATH:-$checkpoints/vqgan/last.ckpt}"
    local config="${VQGAN_CONFIG_PATH:-$checkpoints/vqgan/model.yaml}"
    for path in "INPUT_FILE=$input" "VQGAN_MODEL_PATH=$vqgan" "VQGAN_CONFIG_PATH=$config"; do
        [[ -f "${path#*=}" ]] || { echo "error: ${path%%=*} not found: ${path#*=}" >&2; missing=1; }
    done
    local cmd=(python -m scripts.generate_vqgan_code --file "$input" --outputs "${OUTPUT_FILE:-$here/custom_data_code.txt}"
        --selected_cols "${SELECTED_COLS:-0,1,2,3}" --code_image_size "${CODE_IMAGE_SIZE:-256}" --vq_model vqgan
        --vqgan_model_path "$vqgan" --vqgan_config_path "$config" --batch_size "${BATCH_SIZE:-32}" "$@")
    if [[ -n "${OFA_DRY_RUN:-}" ]]; then
        printf '%q' "${cmd[0]}"; printf ' %q' "${cmd[@]:1}"; echo
        return "$missing"
    fi
    (( missing == 0 )) || exit 1
    cd "$OFA_ROOT" && "${cmd[@]}"
}
ofa_main generate_for_vqgan_code "$@"
