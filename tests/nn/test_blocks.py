"""Blocks and stages: shapes, parity with ultralytics' own blocks, gradients to alpha/beta, fusing."""

import pytest
import torch
from ultralytics.nn.modules import C3, Bottleneck, C2f, C3k2
from ultralytics.nn.tasks import DetectionModel

from cspdet.nn import (
    C3WRC,
    C2fWRC,
    C3k2WRC,
    CSPBlock,
    ResidualBlock,
    WeightedResidualBlock,
    WeightedShortcut,
    WRCBottleneck,
    WRCSpec,
)

# (cspdet block, its constructor args, the ultralytics block it must match with wrc off, that block's args)
PARITY = [
    (WRCBottleneck, (16, 16, True, 1, (3, 3), 0.5), Bottleneck, (16, 16, True, 1, (3, 3), 0.5)),
    (C3WRC, (16, 32, 2, True, 1, 0.5), C3, (16, 32, 2, True, 1, 0.5)),
    (C2fWRC, (16, 32, 2, True, 1, 0.5), C2f, (16, 32, 2, True, 1, 0.5)),
    (C3k2WRC, (16, 32, 2, False, 0.5), C3k2, (16, 32, 2, False, 0.5)),
    (C3k2WRC, (16, 32, 2, True, 0.5), C3k2, (16, 32, 2, True, 0.5)),
    (C3k2WRC, (16, 128, 1, False, 0.5, True), C3k2, (16, 128, 1, False, 0.5, True)),
]
BLOCKS = [
    (ResidualBlock, (8, 16, 2)),
    (WeightedResidualBlock, (8, 16, 2)),
    (WeightedResidualBlock, (16, 16, 1, "channel")),
    (CSPBlock, (8, 16, 2, 0.5, True)),
    (CSPBlock, (8, 16, 1, 0.25, False)),
    *[(block, args) for block, args, _, _ in PARITY],
]


def shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("block, args, upstream, upstream_args", PARITY)
def test_parity_without_weighting(block, args, upstream, upstream_args):
    """With wrc off, state dict names and shapes are exactly those of ultralytics' block."""
    assert shapes(block(*args, wrc=False)) == shapes(upstream(*upstream_args))


@pytest.mark.parametrize("block, args, upstream, upstream_args", PARITY)
def test_weighting_adds_only_alpha_beta(block, args, upstream, upstream_args):
    extra = set(shapes(block(*args, wrc="channel"))) - set(shapes(upstream(*upstream_args)))
    assert extra and all(k.endswith(("wrc.alpha", "wrc.beta")) for k in extra)


@pytest.mark.parametrize("block, args", BLOCKS)
def test_forward_and_gradients(block, args):
    module = block(*args)
    x = torch.randn(2, args[0], 16, 16)
    y = module(x)
    stride = args[2] if block in (ResidualBlock, WeightedResidualBlock) else 1
    assert y.shape == (2, args[1], 16 // stride, 16 // stride)
    y.square().mean().backward()
    weights = [m for m in module.modules() if isinstance(m, WeightedShortcut)]
    for m in weights:
        assert m.alpha.grad is not None and m.alpha.grad.abs().sum() > 0
        assert m.beta.grad is not None and m.beta.grad.abs().sum() > 0


def test_residual_block_shortcut():
    assert isinstance(ResidualBlock(16, 16).shortcut, torch.nn.Identity)
    assert ResidualBlock(16, 32).shortcut.conv.kernel_size == (1, 1)
    assert ResidualBlock(16, 16, 2).shortcut.conv.stride == (2, 2)
    assert ResidualBlock(16, 16).wrc is None and WeightedResidualBlock(16, 16).wrc is not None


def test_zero_last_initialises_branch_bn():
    block = WRCBottleneck(8, 8, wrc={"zero_last": True})
    assert block.cv2.bn.weight.abs().sum() == 0
    assert WRCBottleneck(8, 16, wrc={"zero_last": True}).wrc is None  # no shortcut, nothing to weight


def test_csp_block_rejects_empty_part():
    with pytest.raises(ValueError, match="leaves a part empty"):
        CSPBlock(8, 16, 1, 1.0)


def test_bad_spec_is_rejected_even_without_shortcut():
    with pytest.raises(ValueError, match="unknown wrc preset"):
        C3WRC(8, 16, 1, False, wrc="rezro")


@pytest.mark.parametrize("cfg", ["csp_wrc-n.yaml", "resnet_wrc-n.yaml", "cspresnet_wrc-n.yaml"])
def test_fuse_keeps_outputs(cfg):
    """ultralytics' fuse() folds the BatchNorms inside cspdet blocks and keeps the outputs."""
    model = DetectionModel(cfg, nc=3, verbose=False).eval()
    for m in model.modules():  # non-trivial weights and BN statistics
        if isinstance(m, WeightedShortcut):
            torch.nn.init.uniform_(m.alpha, 0.5, 1.5)
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.running_var, 0.5, 2.0)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        after = model.fuse()(x)[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_spec_objects_accepted():
    assert WRCBottleneck(8, 8, wrc=WRCSpec(alpha=0.0)).wrc.alpha.item() == 0.0
