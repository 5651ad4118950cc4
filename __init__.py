"""Makes the repository root usable as fairseq's ``--user-dir``.

fairseq imports the user dir as a package named after its folder and then imports
``<folder>.tasks.*`` and ``<folder>.models.*`` again; registering the same task twice
fails, so those names are aliased to the top-level packages imported here.
"""
import importlib
import os
import sys

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

_PACKAGES = ("models", "tasks", "criterions")
for _name in _PACKAGES:
    importlib.import_module(_name)
importlib.import_module("utils.lr_scheduler").use_polynomial_decay_with_warmup_ratio()
for _module_name in list(sys.modules):
    if _module_name.split(".")[0] in _PACKAGES:
        sys.modules.setdefault(f"{__name__}.{_module_name}", sys.modules[_module_name])
