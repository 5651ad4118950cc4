#!/usr/bin/env bash
# The README's main command: set up .venv if needed, build the tiny dataset, finetune ofa_tiny on CPU,
# evaluate with beam search, print metrics next to the untrained model's. Options: see --help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source run_scripts/setup_env.sh
source run_scripts/allocator.sh
exec python run_scripts/demo.py "$@"
