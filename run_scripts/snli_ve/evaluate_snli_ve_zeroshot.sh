#!/usr/bin/env bash
# Zero-shot visual entailment: the pretrained OFA-Base checkpoint on SNLI-VE dev, the task built from the command line
# (--zero-shot, decoder prompt prev_output, 384 px); the flags of the original
# run_scripts/snli_ve/evaluate_snli_ve_zeroshot.sh. Writes RESULTS_PATH/snli_ve_zeroshot_predict.json.
# Usage (from the repo root or run_scripts/snli_ve): bash evaluate_snli_ve_zeroshot.sh [extra evaluate.py flags]
# Every NAME below can be set in the environment; see run_scripts/common.sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

evaluate_snli_ve_zeroshot() {  # [ITEMS...] [-- evaluate.py flags]: ITEMS replace the values below
    # SPLIT only names the result files
    ofa_evaluate MASTER_PORT=6081 DATA={DATASET_ROOT}/snli_ve_data/snli_ve_dev.tsv SPLIT=snli_ve_zeroshot \
        CHECKPOINT={CHECKPOINT_ROOT}/ofa_base.pt LOG=evaluate_{SPLIT} --zero-shot --task=snli_ve \
        --bpe-dir={OFA_ROOT}/utils/BPE --selected-cols=0,2,3,4,5 --patch-image-size=384 --max-src-length=80 \
        --prompt-type=prev_output --batch-size=16 --gen-subset={SPLIT} --results-path={RESULTS_ROOT}/snli_ve "$@"
}
ofa_main evaluate_snli_ve_zeroshot -- "$@"
