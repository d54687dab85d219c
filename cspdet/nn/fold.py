"""Deployment folding of weighted shortcuts, run after ultralytics' fuse() has folded the BatchNorms.

A factor on a conv's input or output channels moves into its weights, so alpha and beta cost nothing where a linear
conv is next to them. Along a chain of bottlenecks (C3, C2f), each block's output is kept divided by a per-channel
scale that the convs reading it absorb, which leaves one multiply-add (a single addcmul) per shortcut, the cost of
the plain sum. Outputs are unchanged up to float rounding.

Half precision keeps its range: a factor goes into conv weights, and a stored output is divided by one, only when
every channel of it lies within [1/RANGE, RANGE], so no fused activation exceeds the unfused one by more than RANGE
times and no weight is scaled towards fp16 overflow or underflow. A shortcut whose factors fall outside (alpha near 0,
as ReZero and LayerScale start, or very large weights) keeps both factors at run time: one multiply more.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from ultralytics.nn.modules import Conv

from cspdet.nn.wrc import WeightedShortcut

RANGE = 4.0


def foldable(scale: torch.Tensor) -> bool:
    """Whether every channel of ``scale`` lies within [1/RANGE, RANGE] in magnitude (see the module docstring)."""
    magnitude = scale.abs()
    return bool(((magnitude >= 1 / RANGE) & (magnitude <= RANGE)).all())


def require_fused(module: nn.Module):
    """Raise before anything is folded when a conv of ``module`` still has its BatchNorm (fuse() must run first)."""
    if any(isinstance(m, Conv) and hasattr(m, "bn") for m in module.modules()):
        raise ValueError(f"cannot fold the shortcut weights of {type(module).__name__}: its convs still have their "
                         "BatchNorms; fold after fuse()")  # fmt: skip


def _fused_conv(conv: nn.Module, what: str) -> nn.Conv2d:
    """The nn.Conv2d of an ultralytics Conv whose BatchNorm fuse() has already folded; raise otherwise."""
    if hasattr(conv, "bn") or not isinstance(getattr(conv, "conv", None), nn.Conv2d):
        raise ValueError(f"cannot fold {what} into {type(conv).__name__}: fold after fuse(), into a fused Conv")
    return conv.conv


@torch.no_grad()
def scale_input(conv: nn.Module, scale: torch.Tensor, start: int = 0):
    """Fold ``x[:, start:start+len(scale)] * scale`` into a fused ultralytics Conv that reads ``x``."""
    w = _fused_conv(conv, "an input scale").weight
    if conv.conv.groups != 1 or start + scale.numel() > w.shape[1]:
        raise ValueError(
            f"cannot fold {scale.numel()} input scales at channel {start} into a Conv with {w.shape[1]} input "
            f"channels and {conv.conv.groups} groups: it must be ungrouped and wide enough"
        )
    w[:, start : start + scale.numel()] *= scale.to(w.dtype).view(1, -1, 1, 1)


@torch.no_grad()
def scale_output(conv: nn.Module, scale: torch.Tensor):
    """Fold ``scale * conv(x)`` into a fused ultralytics Conv without activation."""
    c = _fused_conv(conv, "an output scale")
    if not isinstance(conv.act, nn.Identity):
        raise ValueError(f"cannot fold an output scale into a Conv with activation {type(conv.act).__name__}")
    c.weight *= scale.to(c.weight.dtype).view(-1, 1, 1, 1)
    c.bias *= scale.to(c.bias.dtype)


def coefficients(shortcut: WeightedShortcut, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The shortcut's effective (alpha, beta), one value per channel for ``c`` channels."""
    with torch.no_grad():
        a, b = shortcut.coefficients()
    return a.flatten().expand(c).clone(), b.flatten().expand(c).clone()


def fold_chain(blocks: Sequence[nn.Module], c: int) -> list[torch.Tensor | None]:
    """Fold the shortcut weights of bottlenecks (cv1, cv2, wrc) that run one after another on ``c`` channels.

    Block k may compute its output divided by a per-channel scale: alpha (the branch gets factor 1) or its shortcut's
    beta (the shortcut gets factor 1), whichever is foldable and nearer 1; block k+1 absorbs it in its first conv.
    Returns each block's output scale (None for 1): every other reader of that output must absorb it.
    """
    scales, scale = [], None  # scale: what the current input was divided by
    for block in blocks:
        if scale is not None:
            scale_input(block.cv1, scale)
        if block.wrc is None or block.wrc.frozen:
            if scale is not None and block.add:
                raise ValueError("a plain or already folded shortcut cannot carry a scale: fold each stage once")
            scale = None
        else:
            a, b = coefficients(block.wrc, c)
            if scale is not None:
                b *= scale  # the shortcut arrives divided by `scale`
            candidates = [s for s in (a, b) if foldable(s)]
            scale = min(candidates, key=lambda s: s.abs().log().abs().max().item()) if candidates else None
            if scale is None:
                block.wrc.freeze(a, b)
            else:
                block.wrc.freeze(a / scale, b / scale)
        scales.append(scale)
    return scales


def fuse_c3_shortcuts(stage: nn.Module):
    """C3 layout: the chain's last output is the first part of cv3's input."""
    require_fused(stage)
    last = fold_chain(stage.m, stage.cv1.conv.out_channels)[-1] if len(stage.m) else None
    if last is not None:
        scale_input(stage.cv3, last)


def fuse_c2f_shortcuts(stage: nn.Module):
    """C2f layout: every block's output is also the (2 + k)-th part of cv2's input."""
    require_fused(stage)
    if not all(hasattr(m, "wrc") for m in stage.m):  # C3k blocks fold themselves; attention blocks cannot carry
        for block in stage.m:  # a scale, so a bottleneck before attention keeps both factors
            if isinstance(block, nn.Sequential) and block[0].wrc is not None and not block[0].wrc.frozen:
                block[0].wrc.freeze(*coefficients(block[0].wrc, stage.c))
        return
    for k, scale in enumerate(fold_chain(stage.m, stage.c)):
        if scale is not None:
            scale_input(stage.cv2, scale, (2 + k) * stage.c)


def fold_shortcuts(model: nn.Module) -> nn.Module:
    """Fold the shortcut weights of every cspdet block of ``model`` (in place), after fuse() has folded the BatchNorms.

    Ultralytics' ``BaseModel.fuse`` calls this once cspdet is installed; calling it again changes nothing. Blocks whose
    convs still have their BatchNorms are left as they are (ultralytics 8.3's fuse() skips models of under 10).

    Args:
        model (nn.Module): A model or block whose ultralytics Convs are fused.

    Returns:
        (nn.Module): ``model``.

    Examples:
        >>> from ultralytics import YOLO
        >>> model = YOLO("csp_wrc-n.yaml").model.fuse()  # folds the BatchNorms, then calls fold_shortcuts
    """
    for module in model.modules():
        if hasattr(module, "fuse_shortcuts") and not any(
            isinstance(m, Conv) and hasattr(m, "bn") for m in module.modules()
        ):
            module.fuse_shortcuts()
    return model
