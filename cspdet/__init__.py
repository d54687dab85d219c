"""cspdet: Cross Stage Partial and weighted-residual (WRC) blocks for Ultralytics YOLO.

Importing cspdet is cheap (no torch): its blocks, data and tools load on first use, and it installs itself into
ultralytics as soon as ultralytics is imported (at once if it already is). The ``cspdet.pth`` start-up hook does the
same for every process that imports ultralytics, unless ``CSPDET_AUTOLOAD=0``. See docs/design.md.
"""

import importlib

import _cspdet_hook
from cspdet.catalog import BLOCKS, ROWS
from cspdet.errors import CspdetError
from cspdet.version import __version__ as __version__

_EXPORTS = {
    **{name: BLOCKS[name].module for name in ROWS},
    "WRCSpec": "cspdet.nn.wrc",
    "register_module": "cspdet.integration.registry",
}
__all__ = ["CspdetError", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cspdet' has no attribute '{name}'")
    from cspdet.integration.compat import require

    require("registry", use=f"cspdet.{name}")  # clear error where the installed ultralytics lacks what it needs
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted([*globals(), *_EXPORTS])


def _install():
    from cspdet.integration.plugin import install

    install()


_cspdet_hook.after_import("ultralytics", _install)
