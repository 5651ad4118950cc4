#!/usr/bin/env bash
# Source me: activates the venv to run with, then puts the repository on PYTHONPATH.
# The caller's venv is used as it is, never installed into: OFA_VENV when given, else the active one
# (VIRTUAL_ENV: CI images, the test suite's subprocesses, a user's own environment). Otherwise the repository's
# .venv, created from requirements.txt when missing, and reinstalled only when requirements.txt changed since the
# last successful install.
_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${OFA_VENV:-${VIRTUAL_ENV:-}}"
if [ -n "$_venv" ]; then
    if [ ! -x "$_venv/bin/python" ] && [ ! -x "$_venv/bin/python3" ]; then
        echo "[setup] $_venv (OFA_VENV or the active venv) has no bin/python: create it, or unset OFA_VENV" >&2
        return 1 2>/dev/null || exit 1
    fi
else
    _venv="$_repo/.venv"
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
fi
if [ -f "$_venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    source "$_venv/bin/activate"
else  # an interpreter prefix that is no venv (a conda or system Python given as OFA_VENV)
    export PATH="$_venv/bin:$PATH"
fi
export PYTHONPATH="$_repo${PYTHONPATH:+:$PYTHONPATH}"
unset _repo _venv _stamp _want
