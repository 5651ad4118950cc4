"""Reading pickles from user-given paths without executing code.

``pickle.load`` calls whatever a file names (``os.system``, ``builtins.eval``, ...). The side files OFA reads
(``--ans2label-file``, CIDEr-D cached tokens, ``<file>.index`` offsets) hold only builtin containers, strings,
numbers and numpy arrays/scalars, so :func:`load_pickle` resolves exactly those globals and refuses any other,
naming the file and the global, before anything is called.
"""
from __future__ import annotations

import codecs
import collections
import pickle
from typing import Any

import numpy as np

# (module, name) -> object for every global these files legitimately pickle. Python 2's cPickle (the published
# coco-train-words.p) writes ``__builtin__``; numpy 1.x pickles under ``numpy.core``, numpy 2 under ``numpy._core``.
_SAFE_TYPES = (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, bool, complex, slice, range)
_ALLOWED: dict[tuple[str, str], Any] = {}
for _module in ("builtins", "__builtin__"):
    _ALLOWED.update({(_module, t.__name__): t for t in _SAFE_TYPES})
_ALLOWED.update({
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("collections", "Counter"): collections.Counter,
    ("_codecs", "encode"): codecs.encode,  # how protocols 0-2 of Python 3 pickle bytes (a pure conversion)
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
})
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_core, "_reconstruct")] = np._core.multiarray._reconstruct
    _ALLOWED[(_core, "scalar")] = np._core.multiarray.scalar


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names a global outside the allowlist; nothing in it was called."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise UnsafePickleError(f"{module}.{name}")
        return found


def load_pickle(path: str, what: str, encoding: str = "ASCII") -> Any:
    """The object pickled in ``path`` (``what`` names the file's role in errors); a pickle naming any other
    global is refused in one line, without running it."""
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, encoding=encoding).load()
        except UnsafePickleError as err:
            raise UnsafePickleError(
                f"{path}: refusing to load {what}: it pickles '{err}', which such files never contain "
                f"(only dicts, lists, strings, numbers and numpy arrays are read)") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise pickle.UnpicklingError(f"{path}: cannot read {what}: not a pickle or corrupt "
                                         f"({type(err).__name__}: {err})") from None
