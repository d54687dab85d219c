"""cspdet's neural blocks: residual and weighted-residual blocks, CSP stages."""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.nn.blocks import ResidualBlock, WeightedResidualBlock, WRCBottleneck
from cspdet.nn.fold import fold_shortcuts
from cspdet.nn.stages import C3WRC, C2fWRC, C3k2WRC, C3kWRC, CSPBlock
from cspdet.nn.wrc import PRESETS, WeightedShortcut, WRCSpec

__all__ = [
    "PRESETS",
    "C2fWRC",
    "C3WRC",
    "C3k2WRC",
    "C3kWRC",
    "CSPBlock",
    "ResidualBlock",
    "WRCBottleneck",
    "WRCSpec",
    "WeightedResidualBlock",
    "WeightedShortcut",
    "fold_shortcuts",
]
