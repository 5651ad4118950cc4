#!/usr/bin/env bash
# Source me: creates .venv from requirements.txt when missing or outdated, then activates it.
# Idempotent: reinstalls only when requirements.txt changed since the last successful install.
_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${OFA_VENV:-$_repo/.venv}"
_stamp="$_venv/.requirements.sha256"
_want="$(sha256sum "$_repo/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$_venv/bin/python" ] || [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
    echo "[setup] creating $_venv from requirements.txt (first run downloads PyTorch; this takes a few minutes)"
    python3 -m venv "$_venv" || { echo "[setup] python3 -m venv failed: install python3-venv (Python 3.11)" >&2; return 1 2>/dev/null || exit 1; }
    "$_venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
    "$_venv/bin/python" -m pip install --quiet -r "$_repo/requirements.txt" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) \
        || { echo "[setup] pip install -r requirements.txt failed" >&2; return 1 2>/dev/null || exit 1; }
    echo "$_want" > "$_stamp"
fi
# shellcheck disable=SC1091
source "$_venv/bin/activate"
export PYTHONPATH="$_repo${PYTHONPATH:+:$PYTHONPATH}"
unset _repo _venv _stamp _want
