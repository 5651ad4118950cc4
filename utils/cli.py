"""Command-line parsing shared by the entry points (train.py, evaluate.py, predict.py, scripts/)."""
from __future__ import annotations

import argparse
import ast
import sys
from typing import Callable, Optional

HELP_FLAGS = ("-h", "--help")
QUANTIZE_CHOICES = ("none", "int8")  #: ``--quantize`` (models/quantization.py); here so --help imports no torch


def parse_dict_literal(text: Optional[str], flag: str) -> dict:
    """A ``--model-overrides``-style option: a Python dict literal (the original's scripts write ``False``)."""
    try:
        value = ast.literal_eval(text or "{}")
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"{flag} is not a Python dict literal: {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a dict, got {type(value).__name__}: {text!r}")
    return value


def parse_args_and_arch(parser: argparse.ArgumentParser, argv: Optional[list[str]] = None,
                        modify_parser: Optional[Callable[[argparse.ArgumentParser], None]] = None):
    """fairseq's ``options.parse_args_and_arch`` whose ``--help`` also lists the options of the chosen
    ``--task``, ``--arch`` and ``--criterion``: fairseq adds them after a first parse, which ``--help`` ends
    before they exist, so help is held back until the parser is complete. The caller registers the OFA
    components first (``tasks.loading.register_ofa_components``) so their choices exist without --user-dir."""
    from fairseq import options

    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(flag in argv for flag in HELP_FLAGS):
        return options.parse_args_and_arch(parser, input_args=argv, modify_parser=modify_parser)
    calls = []

    def help_when_complete(complete_parser: argparse.ArgumentParser) -> None:
        if modify_parser is not None:
            modify_parser(complete_parser)
        calls.append(complete_parser)
        if len(calls) == 2:  # fairseq calls this again once every task/model/criterion option is added
            complete_parser.print_help()
            sys.exit(0)

    try:
        options.parse_args_and_arch(parser, input_args=[a for a in argv if a not in HELP_FLAGS],
                                    modify_parser=help_when_complete, parse_known=True)
    except RuntimeError:  # fairseq's default --arch is not registered: help without the model's options
        pass
    parser.print_help()  # not reached when fairseq calls back twice; keeps --help working if it does not
    sys.exit(0)
