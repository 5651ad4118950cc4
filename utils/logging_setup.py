"""Quiet consoles for our entry points: warnings and INFO go to a log file, the console keeps what matters.

``OFA_SHOW_WARNINGS=1`` (or the entry point's ``--verbose``) brings third-party deprecation warnings and INFO
logs back to the console.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def show_warnings_requested(verbose: bool = False) -> bool:
    """Whether the user asked for third-party warnings (``--verbose`` or ``OFA_SHOW_WARNINGS=1``)."""
    return verbose or os.environ.get("OFA_SHOW_WARNINGS", "") not in ("", "0")


def configure_logging(log_file: str | None = None, verbose: bool = False, console_level: int = logging.WARNING) -> None:
    """Console at ``console_level`` (INFO when verbose), everything from INFO up in ``log_file`` when given;
    deprecation and user warnings of other packages silenced unless requested."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else console_level)
    console.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    root.addHandler(console)
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        to_file = logging.FileHandler(log_file)
        to_file.setLevel(logging.INFO)
        to_file.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
        root.addHandler(to_file)
    logging.getLogger("PIL").setLevel(logging.INFO)  # PIL's DEBUG chunk traces are never useful to users
    if not show_warnings_requested(verbose):
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)
        logging.captureWarnings(True)  # whatever is left goes to the log file, not the console
