"""cspdet: Cross Stage Partial and weighted-residual (WRC) blocks for Ultralytics YOLO.

Importing cspdet (done automatically after ``import ultralytics`` unless ``CSPDET_AUTOLOAD=0``) registers its blocks
for ultralytics model YAMLs and installs the integration described in docs/design.md.
"""

import torch

from cspdet.integration import install, register_module
from cspdet.nn import (
    C3WRC,
    C2fWRC,
    C3k2WRC,
    C3kWRC,
    CSPBlock,
    ResidualBlock,
    WeightedResidualBlock,
    WeightedShortcut,
    WRCBottleneck,
    WRCSpec,
)

__version__ = "0.1.0"
__all__ = [
    "C2fWRC",
    "C3WRC",
    "C3k2WRC",
    "CSPBlock",
    "ResidualBlock",
    "WRCSpec",
    "WeightedResidualBlock",
    "register_module",
]

install()
for _block in (ResidualBlock, WeightedResidualBlock):
    register_module(_block)
for _block in (C3WRC, CSPBlock):
    register_module(_block, like="C3")
register_module(C2fWRC, like="C2f")
register_module(C3k2WRC, like="C3k2")
torch.serialization.add_safe_globals([WeightedShortcut, WRCBottleneck, C3kWRC])  # inner classes in checkpoints
