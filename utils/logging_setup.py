"""Quiet consoles for our entry points (train.py, evaluate.py, predict.py, the demo).

Third-party deprecation warnings and fairseq's import-time notices are silenced unless ``OFA_SHOW_WARNINGS=1``
(or the entry point's ``--verbose``); bulky dumps (the config, the model printout) go to a file, and the console
gets one line saying where.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
SHOW_WARNINGS_ENV = "OFA_SHOW_WARNINGS"

# loggers that announce optional packages we do not use (fairseq's speech tasks: "Please install tensorboardX")
IMPORT_NOTICE_LOGGERS = ("fairseq.tasks.text_to_speech",)


def show_warnings_requested(verbose: bool = False) -> bool:
    """Whether the user asked for third-party warnings (``--verbose`` or ``OFA_SHOW_WARNINGS=1``)."""
    return verbose or os.environ.get(SHOW_WARNINGS_ENV, "") not in ("", "0")


def quiet_third_party(verbose: bool = False) -> None:
    """Silence deprecation/user warnings of the libraries (Hydra, torch, fairseq) and their import notices,
    unless requested. Call before importing fairseq."""
    if show_warnings_requested(verbose):
        return
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    for name in IMPORT_NOTICE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(verbose: bool = False, console_level: int = logging.WARNING) -> None:
    """Console logging at ``console_level`` (INFO when verbose) on stderr, third-party noise silenced."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else console_level)
    console.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    root.addHandler(console)
    logging.getLogger("PIL").setLevel(logging.INFO)  # PIL's DEBUG chunk traces are never useful to users
    quiet_third_party(verbose)


def log_to_stdout() -> None:
    """fairseq's console format on stdout, at ``LOGLEVEL`` (INFO by default), for train.py and evaluate.py."""
    logging.basicConfig(format=LOG_FORMAT, datefmt=DATE_FORMAT, level=os.environ.get("LOGLEVEL", "INFO").upper(),
                        stream=sys.stdout)


def log_to_file(logger: logging.Logger, title: str, obj, path: str) -> None:
    """Append ``obj`` (a config dump, a model printout) to ``path``; log one line naming the file instead."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{title}:\n{obj}\n\n")
    logger.info("%s written to %s", title, path)
