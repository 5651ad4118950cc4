"""Flag values that cannot work, refused at startup in one line naming the flag (not deep in a run)."""
from __future__ import annotations

import json
import os
import re
import sys


class OptionError(ValueError):
    """A flag value that cannot work; the message names the flag."""


def exit_if_user_dir_missing(prog: str, argv: list[str]) -> None:
    """fairseq imports ``--user-dir`` while parsing and fails with a bare ``FileNotFoundError``; say it first."""
    for i, arg in enumerate(argv):
        path = argv[i + 1] if arg == "--user-dir" and i + 1 < len(argv) else \
            arg.split("=", 1)[1] if arg.startswith("--user-dir=") else None
        if path is not None and not os.path.isdir(path):
            sys.exit(f"{prog}: error: --user-dir {path} is not a directory")


def _check_batch_sizes(cfg) -> None:
    for flag, value in (("--batch-size", cfg.dataset.batch_size),
                        ("--batch-size-valid", cfg.dataset.get("batch_size_valid"))):
        if value is not None and value < 1:
            raise OptionError(f"{flag} {value}: must be at least 1")


def _check_selected_cols(cfg) -> None:
    cols = cfg.task.get("selected_cols")
    if cols is not None and not re.fullmatch(r"\d+(,\d+)*", str(cols).replace(" ", "")):
        raise OptionError(f"--selected-cols {cols!r}: expected comma-separated column numbers, e.g. 0,4,2")


def _check_beam(flag: str, beam) -> None:
    if beam is not None and (not isinstance(beam, int) or beam < 1):
        raise OptionError(f"{flag}: beam {beam!r} must be an integer of at least 1")


def check_training_options(cfg) -> None:
    """``--lr``, batch sizes, ``--selected-cols`` and the beam of ``--eval-args``/``--scst-args`` of a training
    config."""
    lrs = list(cfg.optimization.lr)
    if any(lr <= 0 for lr in lrs):
        raise OptionError(f"--lr {','.join(map(str, lrs))}: must be positive (a negative rate trains in reverse)")
    _check_batch_sizes(cfg)
    _check_selected_cols(cfg)
    for name in ("eval_args", "scst_args"):
        text = cfg.task.get(name)
        if text:
            try:
                args = json.loads(text)
            except json.JSONDecodeError as err:
                raise OptionError(f"--{name.replace('_', '-')} is not JSON: {text!r} ({err})") from None
            _check_beam(f"--{name.replace('_', '-')}", args.get("beam") if isinstance(args, dict) else None)


def check_generation_options(cfg) -> None:
    """``--beam``, batch sizes and ``--selected-cols`` of an evaluation config."""
    _check_beam("--beam", cfg.generation.beam)
    _check_batch_sizes(cfg)
    _check_selected_cols(cfg)
