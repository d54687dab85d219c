"""Deployment folding of weighted shortcuts, run after ultralytics' fuse() has folded the BatchNorms.

A factor on a conv's input or output channels moves into its weights, so alpha and beta cost nothing where a linear
conv is next to them. Along a chain of bottlenecks (C3, C2f), each block's output is kept divided by a per-channel
scale that the convs reading it absorb, which leaves one multiply-add (a single addcmul) per shortcut, the cost of
the plain sum. Outputs are unchanged up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cspdet.nn.wrc import WeightedShortcut


@torch.no_grad()
def scale_input(conv: nn.Module, scale: torch.Tensor, start: int = 0):
    """Fold ``x[:, start:start+len(scale)] * scale`` into a fused ultralytics Conv that reads ``x``."""
    assert not hasattr(conv, "bn") and conv.conv.groups == 1, "fold after fuse(), into ungrouped convs"
    w = conv.conv.weight
    w[:, start : start + scale.numel()] *= scale.to(w.dtype).view(1, -1, 1, 1)


@torch.no_grad()
def scale_output(conv: nn.Module, scale: torch.Tensor):
    """Fold ``scale * conv(x)`` into a fused ultralytics Conv without activation."""
    assert not hasattr(conv, "bn") and isinstance(conv.act, nn.Identity), "fold after fuse(), into act=False convs"
    conv.conv.weight *= scale.to(conv.conv.weight.dtype).view(-1, 1, 1, 1)
    conv.conv.bias *= scale.to(conv.conv.bias.dtype)


def _coefficients(shortcut: WeightedShortcut) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        a, b = shortcut.coefficients()
    return a.flatten(), b.flatten()


def fold_chain(blocks: Sequence[nn.Module], c: int) -> list[torch.Tensor | None]:
    """Fold the shortcut weights of bottlenecks (cv1, cv2, wrc) that run one after another on ``c`` channels.

    Block k reads block k-1's output, which it computes divided by a per-channel scale that block k absorbs in its
    first conv. Returns each block's output scale (None for 1): every other reader of that output must absorb it.
    """
    scales, scale = [], None  # scale: what the current input was divided by
    for block in blocks:
        if scale is not None:
            scale_input(block.cv1, scale)
        if block.wrc is None or block.wrc.frozen:
            assert scale is None or not block.add, "a plain shortcut cannot carry a scale"
            scale = None
        else:
            a, b = _coefficients(block.wrc)
            b = b * scale if scale is not None else b  # the shortcut arrives divided by `scale`
            if bool((a != 0).all()):  # out / a = branch + (b / a) * shortcut
                block.wrc.freeze(None, b / a)
                scale = a.expand(c).clone()
            elif bool((b != 0).all()):  # out / b = (a / b) * branch + shortcut
                block.wrc.freeze(a / b, None)
                scale = b.expand(c).clone()
            else:
                block.wrc.freeze(a, b)
                scale = None
        scales.append(scale)
    return scales


def fuse_c3_shortcuts(stage: nn.Module):
    """C3 layout: the chain's last output is the first part of cv3's input."""
    last = fold_chain(stage.m, stage.cv1.conv.out_channels)[-1] if len(stage.m) else None
    if last is not None:
        scale_input(stage.cv3, last)


def fuse_c2f_shortcuts(stage: nn.Module):
    """C2f layout: every block's output is also the (2 + k)-th part of cv2's input."""
    if not all(hasattr(m, "wrc") for m in stage.m):  # C3k blocks fold themselves; attention blocks cannot carry
        for block in stage.m:  # a scale, so a bottleneck before attention keeps both factors
            if isinstance(block, nn.Sequential) and block[0].wrc is not None and not block[0].wrc.frozen:
                block[0].wrc.freeze(*_coefficients(block[0].wrc))
        return
    for k, scale in enumerate(fold_chain(stage.m, stage.c)):
        if scale is not None:
            scale_input(stage.cv2, scale, (2 + k) * stage.c)
