#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run the whole pytest suite (CPU only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source run_scripts/setup_env.sh
python -m pytest "$@"
