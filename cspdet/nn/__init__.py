"""cspdet's neural blocks: residual and weighted-residual blocks, CSP stages (every block of ``cspdet.catalog``)."""

import importlib

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.catalog import BLOCKS
from cspdet.nn.fold import fold_shortcuts
from cspdet.nn.wrc import PRESETS, WRCSpec

globals().update({name: getattr(importlib.import_module(block.module), name) for name, block in BLOCKS.items()})
__all__ = [*BLOCKS, "PRESETS", "WRCSpec", "fold_shortcuts"]
