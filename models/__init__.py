"""Models; importing this package registers them with fairseq."""
from . import ofa  # noqa: F401
