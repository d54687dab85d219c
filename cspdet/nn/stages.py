"""CSP stages: CSPNet's cross stage and the YOLOv5/v8/11 layouts (C3, C2f, C3k2) with weighted shortcuts.

The YOLO layouts are ultralytics' own stages whose bottlenecks are adopted as weighted ones (``adopt``): built from a
YAML they are the very modules ultralytics builds, so with the same seed they start from the stock model's weights.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules import C3, C2f, C3k2, Conv
from ultralytics.nn.modules.block import C3k

from cspdet.nn.blocks import ResidualBlock, WRCBottleneck
from cspdet.nn.fold import fuse_c2f_shortcuts, fuse_c3_shortcuts
from cspdet.nn.upstream import upstream_arguments
from cspdet.nn.wrc import WRCSpec


class CSPBlock(nn.Module):
    """Cross Stage Partial stage (CSPNet): split, n residual blocks on one part, bypass the other, concat, fuse.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of residual blocks.
        e (float): Share of the channels sent through the blocks; the rest bypasses them.
        wrc (bool | str | dict): Shortcut weighting of the blocks (see WRCSpec); false for plain ResidualBlocks.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5, wrc=False):
        super().__init__()
        self.c = int(c2 * e)  # channels through the blocks
        self.parts = (c2 - self.c, self.c)  # (bypass, blocks)
        if not 0 < self.c < c2:
            raise ValueError(f"CSPBlock e={e} with c2={c2} leaves a part empty: need 0 < int(c2 * e) < c2")
        self.cv1 = Conv(c1, c2, 1)
        spec = WRCSpec.parse(wrc)
        self.m = nn.Sequential(*(ResidualBlock(self.c, self.c, 1, spec) for _ in range(n)))
        self.cv2 = Conv(self.c, self.c, 1)  # partial transition of the block path
        self.cv3 = Conv(c2, c2, 1)  # transition after the concatenation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split, run the blocks on one part, concatenate with the bypass and fuse."""
        bypass, y = self.cv1(x).split(self.parts, 1)
        return self.cv3(torch.cat((bypass, self.cv2(self.m(y))), 1))


class WeightedStage:
    """Mixin for ultralytics' CSP stages whose bottlenecks get weighted shortcuts (see WRCBottleneck.adopt)."""

    @classmethod
    def adopt(cls, stage: nn.Module, wrc=True):
        """Turn ultralytics' ``stage`` (an instance of this class's upstream base) into this class in place."""
        stage.__class__ = cls
        spec = WRCSpec.parse(wrc)
        for block in stage.m:
            if isinstance(block, C3k):
                C3kWRC.adopt(block, spec)
            elif isinstance(block, nn.Sequential):  # C3k2's Bottleneck + PSABlock attention block
                WRCBottleneck.adopt(block[0], spec)
            else:
                WRCBottleneck.adopt(block, spec)
        return stage


class C3WRC(WeightedStage, C3):
    """YOLOv5 C3 with weighted bottleneck shortcuts; wrc=False gives exactly ultralytics' C3.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of bottlenecks.
        shortcut (bool): Whether the bottlenecks have shortcuts.
        g (int): Groups.
        e (float): Hidden-channel expansion.
        wrc (bool | str | dict): Shortcut weighting (see WRCSpec).
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5, wrc=True):
        super().__init__(c1, c2, n, shortcut, g, e)
        self.adopt(self, wrc)

    fuse_shortcuts = fuse_c3_shortcuts


class C3kWRC(WeightedStage, C3k):
    """YOLO11 C3k (C3 with k x k bottlenecks) with weighted shortcuts.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of bottlenecks.
        shortcut (bool): Whether the bottlenecks have shortcuts.
        g (int): Groups.
        e (float): Hidden-channel expansion.
        k (int): Kernel size.
        wrc (bool | str | dict): Shortcut weighting (see WRCSpec).
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut=True, g: int = 1, e: float = 0.5, k: int = 3, wrc=True):
        super().__init__(c1, c2, n, shortcut, g, e, k)
        self.adopt(self, wrc)

    fuse_shortcuts = fuse_c3_shortcuts


class C2fWRC(WeightedStage, C2f):
    """YOLOv8 C2f with weighted bottleneck shortcuts; wrc=False gives exactly ultralytics' C2f.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of bottlenecks.
        shortcut (bool): Whether the bottlenecks have shortcuts.
        g (int): Groups.
        e (float): Hidden-channel expansion.
        wrc (bool | str | dict): Shortcut weighting (see WRCSpec).
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5, wrc=True):
        super().__init__(c1, c2, n, shortcut, g, e)
        self.adopt(self, wrc)

    fuse_shortcuts = fuse_c2f_shortcuts


class C3k2WRC(WeightedStage, C3k2):
    """YOLO11 C3k2 whose bottlenecks (plain, inside C3k, or before PSA attention) have weighted shortcuts.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of blocks.
        c3k (bool): Use C3k blocks (ultralytics turns this on for the m/l/x scales).
        e (float): Hidden-channel expansion.
        attn (bool): Use Bottleneck + PSABlock attention blocks (ultralytics 8.4 and later).
        g (int): Groups.
        shortcut (bool): Whether the bottlenecks have shortcuts.
        wrc (bool | str | dict): Shortcut weighting (see WRCSpec); false gives exactly ultralytics' C3k2.
    """

    def __init__(self, c1: int, c2: int, n=1, c3k=False, e=0.5, attn=False, g=1, shortcut=True, wrc=True):
        values = {"c3k": c3k, "e": e, "attn": attn, "g": g, "shortcut": shortcut}
        super().__init__(c1, c2, n, *upstream_arguments(C3k2WRC, C3k2, 4, values, "C3k2WRC"))  # attn: 8.4 and later
        self.adopt(self, wrc)

    fuse_shortcuts = fuse_c2f_shortcuts
