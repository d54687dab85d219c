"""Deployment folding: after ultralytics' fuse() the weighted shortcuts keep the outputs and cost one op at most."""

import pytest
import torch
from torch import nn
from ultralytics.nn.tasks import BaseModel

from cspdet.nn import C3WRC, PRESETS, C2fWRC, C3k2WRC, CSPBlock, ResidualBlock, WeightedShortcut

BLOCKS = [
    (ResidualBlock, (8, 16, 2)),  # projection shortcut: alpha and beta vanish into convs
    (ResidualBlock, (16, 16, 1)),  # identity shortcut: one addcmul
    (CSPBlock, (16, 32, 2, 0.5)),
    (C3WRC, (16, 32, 3, True, 1, 0.5)),
    (C2fWRC, (16, 32, 3, True, 1, 0.5)),
    (C3k2WRC, (16, 32, 2, False, 0.5)),
    (C3k2WRC, (16, 32, 2, True, 0.5)),
    (C3k2WRC, (16, 128, 1, False, 0.5, True)),  # attention: the bottleneck keeps both factors
]
OPTIONS = [*sorted(PRESETS), {"preset": "rezero", "weights": "channel"}, {"preset": "fast", "weights": "channel"}]


def fuse(module: nn.Module) -> nn.Module:
    """Run ultralytics' own BaseModel.fuse (with cspdet's folding) on a bare block."""
    model = BaseModel()
    model.model = nn.Sequential(module)
    model.fuse(verbose=False)
    return module


@pytest.mark.parametrize("block, args", BLOCKS)
@pytest.mark.parametrize("wrc", OPTIONS, ids=str)
def test_fuse_keeps_outputs(block, args, wrc):
    torch.manual_seed(0)
    module = block(*args, wrc=wrc).eval()
    trained = wrc not in ("rezero",)  # keep one untrained ReZero: alpha == 0 exactly
    for m in module.modules():
        if isinstance(m, WeightedShortcut) and trained:
            nn.init.uniform_(m.alpha, 0.5, 1.5)
            nn.init.uniform_(m.beta, 0.5, 1.5)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_var, 0.5, 2.0)
            nn.init.uniform_(m.running_mean, -0.5, 0.5)
    x = torch.randn(2, args[0], 16, 16)
    with torch.no_grad():
        before = module(x)
        after = fuse(module)(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    shortcuts = [m for m in module.modules() if isinstance(m, WeightedShortcut)]
    assert shortcuts and all(m.frozen and not hasattr(m, "alpha") for m in shortcuts)
    factors = [(m.branch_scale is not None) + (m.shortcut_scale is not None) for m in shortcuts]
    assert max(factors) <= (2 if args[-1] is True and block is C3k2WRC and len(args) == 6 else 1)
    if block is ResidualBlock and args[0] != args[1]:
        assert factors == [0]  # both folded into the convs: a plain sum


def test_fuse_twice_is_a_no_op():
    module = C3WRC(8, 8, 2, wrc="channel").eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        once = fuse(module)(x)
        twice = fuse(module)(x)
    torch.testing.assert_close(once, twice)
