"""Residual blocks: basic ResNet block, its weighted form and the YOLO bottleneck with a weighted shortcut."""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules import Bottleneck, Conv

from cspdet.nn.fold import coefficients, foldable, require_fused, scale_output
from cspdet.nn.wrc import WeightedShortcut, WRCSpec


def weighted_shortcut(c: int, spec: WRCSpec | None, last: Conv, residual: bool = True) -> WeightedShortcut | None:
    """Return the WeightedShortcut for ``spec`` (None for a plain shortcut), zeroing ``last``'s BN gamma if asked."""
    if spec is None or not residual:
        return None
    if spec.zero_last:
        nn.init.zeros_(last.bn.weight)
    return WeightedShortcut(c, spec)


class ResidualBlock(nn.Module):
    """Basic ResNet block H(x) = F(x) + x: two 3x3 conv+BN, identity or 1x1 projection shortcut.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        s (int): Stride of the first conv (and of the projection).
        wrc (bool | str | dict): Shortcut weighting (see WRCSpec); false for the plain sum.
    """

    def __init__(self, c1: int, c2: int, s: int = 1, wrc=False):
        super().__init__()
        self.cv1 = Conv(c1, c2, 3, s)
        self.cv2 = Conv(c2, c2, 3, act=False)
        self.shortcut = Conv(c1, c2, 1, s, act=False) if s != 1 or c1 != c2 else nn.Identity()
        self.act = Conv.default_act
        self.wrc = weighted_shortcut(c2, WRCSpec.parse(wrc), self.cv2)

    def fuse_shortcuts(self):
        """Fold alpha into cv2 and beta into the projection (after fuse()) where foldable; an identity keeps beta."""
        if self.wrc is None or self.wrc.frozen:
            return
        require_fused(self)
        a, b = coefficients(self.wrc, self.cv2.conv.out_channels)
        if foldable(a):
            scale_output(self.cv2, a)
            a = None
        if isinstance(self.shortcut, Conv) and foldable(b):
            scale_output(self.shortcut, b)
            b = None
        self.wrc.freeze(a, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return act(F(x) + shortcut(x)), weighted when wrc is on."""
        y, x = self.cv2(self.cv1(x)), self.shortcut(x)
        return self.act(self.wrc(y, x) if self.wrc is not None else y + x)


class WeightedResidualBlock(ResidualBlock):
    """ResidualBlock with a weighted residual connection H(x) = alpha * F(x) + beta * x (YOLOv4's WRC).

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        s (int): Stride.
        wrc (bool | str | dict): Shortcut weighting, on by default (see WRCSpec).
    """

    def __init__(self, c1: int, c2: int, s: int = 1, wrc=True):
        super().__init__(c1, c2, s, wrc)


class WRCBottleneck(Bottleneck):
    """Ultralytics Bottleneck whose shortcut is weighted: alpha * cv2(cv1(x)) + beta * x.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        shortcut (bool): Whether to add the shortcut (only when c1 == c2).
        g (int): Groups of the second conv.
        k (tuple): Kernel sizes of the two convs.
        e (float): Hidden-channel expansion.
        wrc (bool | str | dict): Shortcut weighting (see WRCSpec); false gives exactly ultralytics' Bottleneck.
    """

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, k=(3, 3), e: float = 0.5, wrc=True):
        super().__init__(c1, c2, shortcut, g, k, e)
        self.wrc = weighted_shortcut(c2, WRCSpec.parse(wrc), self.cv2, self.add)

    @classmethod
    def adopt(cls, block: Bottleneck, wrc=True) -> WRCBottleneck:
        """Turn ultralytics' ``block`` into a WRCBottleneck in place, keeping its convs and their initial weights.

        Stages built this way draw from the random generator exactly as ultralytics' own stages do, so with the same
        seed a weighted model starts from the stock model's convolutions.
        """
        block.__class__ = cls
        block.wrc = weighted_shortcut(block.cv2.conv.out_channels, WRCSpec.parse(wrc), block.cv2, block.add)
        return block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the bottleneck with its (weighted) shortcut."""
        y = self.cv2(self.cv1(x))
        if self.wrc is not None:
            return self.wrc(y, x)
        return x + y if self.add else y
