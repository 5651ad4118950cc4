#!/usr/bin/env bash
# Turn images into VQGAN codes: the input rows of text-to-image training (scripts/generate_vqgan_code.py).
# Same options as the original run_scripts/image_gen/generate_for_vqgan_code.sh.
#
# text-image pairs (SELECTED_COLS=0,1,2,3):
#   input   uniq-id, image-id, image base64, text     162365  12455  /9j/4AAQSkZJ....UCP/2Q==  two people in an ocean...
#   output  uniq-id, image-id, text, code             162365  12455  two people in an ocean...  6288 4495 4139 ...
# images only (SELECTED_COLS=0,1):
#   input   image-id, image base64                    12455  /9j/4AAQSkZJ....UCP/2Q==
#   output  image-id, code                            12455  6288 4495 4139 ...
# Environment: INPUT_FILE, OUTPUT_FILE, SELECTED_COLS, CODE_IMAGE_SIZE (256: 1024 codes), BATCH_SIZE,
# VQGAN_MODEL_PATH, VQGAN_CONFIG_PATH. Usage: bash generate_for_vqgan_code.sh [extra flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
SELECTED_COLS="${SELECTED_COLS:-0,1,2,3}"  # before image_gen_env.sh, whose default is the task's 0,2,1
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$SCRIPT_DIR/image_gen_env.sh"

INPUT_FILE="${INPUT_FILE:-$SCRIPT_DIR/custom_data.txt}"
OUTPUT_FILE="${OUTPUT_FILE:-$SCRIPT_DIR/custom_data_code.txt}"

require_file "$INPUT_FILE" "input TSV (INPUT_FILE)"
require_file "$VQGAN_MODEL_PATH" "VQGAN checkpoint (VQGAN_MODEL_PATH)"
require_file "$VQGAN_CONFIG_PATH" "VQGAN config (VQGAN_CONFIG_PATH)"

cmd=(python -m scripts.generate_vqgan_code
    --file "$INPUT_FILE"
    --outputs "$OUTPUT_FILE"
    --selected_cols "$SELECTED_COLS"
    --code_image_size "$CODE_IMAGE_SIZE"
    --vq_model vqgan
    --vqgan_model_path "$VQGAN_MODEL_PATH"
    --vqgan_config_path "$VQGAN_CONFIG_PATH"
    --batch_size "${BATCH_SIZE:-32}"
    "$@")
if [[ -n "${OFA_DRY_RUN:-}" ]]; then
    printf '%q' "${cmd[0]}"; printf ' %q' "${cmd[@]:1}"; echo
    exit 0
fi
cd "$OFA_ROOT"
"${cmd[@]}"
