"""Deployment folding: after ultralytics' fuse() the weighted shortcuts keep the outputs, the range of the activations
(half precision stays finite and within its rounding) and cost one op at most where the factors allow it."""

import copy
import itertools
import subprocess
import sys

import pytest
import torch
from torch import nn
from ultralytics.nn.tasks import BaseModel, DetectionModel, yaml_model_load

from cspdet.nn import C3WRC, PRESETS, C2fWRC, C3k2WRC, CSPBlock, ResidualBlock, WeightedShortcut
from cspdet.nn.fold import RANGE, fold_shortcuts

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
IDS = ["resnet-projection", "resnet-identity", "csp", "c3", "c2f", "c3k2", "c3k2-c3k", "c3k2-attention"]
OPTIONS = [*sorted(PRESETS), {"preset": "rezero", "weights": "channel"}, {"preset": "fast", "weights": "channel"}]
VALUES = (1e-7, 1e-4, -0.007, 0.0, 1.0, 50.0)  # alpha and beta values that folding must survive
HALF = {torch.float16: 2**-10, torch.bfloat16: 2**-7}  # unit roundoff of each half type


def fuse(module: nn.Module) -> nn.Module:
    """Run ultralytics' own BaseModel.fuse (with cspdet's folding) on a bare block."""
    model = BaseModel()
    model.model = nn.Sequential(module)
    model.fuse(verbose=False)
    return module


def randomise_batchnorms(module: nn.Module):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_var, 0.5, 2.0)
            nn.init.uniform_(m.running_mean, -0.5, 0.5)


def factors(module: nn.Module) -> list[int]:
    """Run-time factors left on each shortcut after folding (0: a plain sum, 1: one addcmul, 2: one multiply more)."""
    shortcuts = [m for m in module.modules() if isinstance(m, WeightedShortcut)]
    assert shortcuts and all(m.frozen and not hasattr(m, "alpha") for m in shortcuts)
    return [(m.branch_scale is not None) + (m.shortcut_scale is not None) for m in shortcuts]


def largest_activation(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The module's output and the largest magnitude among the outputs of all its submodules."""
    largest = []

    def record(_, __, output):
        if isinstance(output, torch.Tensor):
            largest.append(output.detach().abs().max().item())

    hooks = [m.register_forward_hook(record) for m in module.modules()]
    try:
        with torch.no_grad():
            y = module(x)
    finally:
        for hook in hooks:
            hook.remove()
    return y, max(largest)


@pytest.mark.parametrize("block, args", BLOCKS, ids=IDS)
@pytest.mark.parametrize("wrc", OPTIONS, ids=str)
def test_fuse_keeps_outputs(block, args, wrc):
    torch.manual_seed(0)
    module = block(*args, wrc=wrc).eval()
    trained = wrc not in ("rezero",)  # keep one untrained ReZero: alpha == 0 exactly
    for m in module.modules():
        if isinstance(m, WeightedShortcut) and trained:
            nn.init.uniform_(m.alpha, 0.5, 1.5)
            nn.init.uniform_(m.beta, 0.5, 1.5)
    randomise_batchnorms(module)
    x = torch.randn(2, args[0], 16, 16)
    with torch.no_grad():
        before = module(x)
        after = fuse(module)(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    attention = block is C3k2WRC and args[-1] is True
    assert max(factors(module)) <= (2 if attention else 1)  # one addcmul per shortcut, the plain sum's cost
    if block is ResidualBlock and args[0] != args[1] and trained:
        assert factors(module) == [0]  # both folded into the convs: a plain sum


def set_coefficients(module: nn.Module, alpha, beta, generator: torch.Generator):
    """Give every shortcut the values ``alpha`` and ``beta`` (scalars, or per-channel pools shuffled per shortcut)."""
    for m in module.modules():
        if isinstance(m, WeightedShortcut):
            for p, values in ((m.alpha, alpha), (m.beta, beta)):
                values = torch.as_tensor(values, dtype=torch.float32)
                if values.numel() > 1:
                    values = values[torch.randint(len(values), p.shape, generator=generator)]
                p.data = values.expand(p.shape).clone()


def check_folding(module: nn.Module, x: torch.Tensor):
    """Fold a copy of ``module`` and check fp32 equality, the activation range and fp16/bf16 rounding."""
    reference, largest = largest_activation(module, x)
    fused = fuse(copy.deepcopy(module))
    output, fused_largest = largest_activation(fused, x)
    scale = reference.abs().max().item()
    torch.testing.assert_close(output, reference, rtol=1e-4, atol=1e-4 * scale)
    assert fused_largest <= RANGE * largest * (1 + 1e-6), "a fused activation outgrew the unfused ones"
    for dtype, roundoff in HALF.items():
        with torch.no_grad():
            unfused_half = copy.deepcopy(module).to(dtype)(x.to(dtype)).float()
            fused_half = copy.deepcopy(fused).to(dtype)(x.to(dtype)).float()
        if not unfused_half.isfinite().all():
            continue  # the weights overflow this type by themselves (e.g. alpha = beta = 50 along a chain)
        assert fused_half.isfinite().all(), f"{dtype}: the fused model overflows where the unfused one does not"
        unfused_error = (unfused_half - reference).abs().max().item()
        fused_error = (fused_half - reference).abs().max().item()
        assert fused_error <= 2 * unfused_error + 8 * roundoff * scale, f"{dtype}: {fused_error} vs {unfused_error}"


@pytest.mark.parametrize("block, args", BLOCKS, ids=IDS)
@pytest.mark.parametrize("norm", ["none", "relu", "softmax"])
def test_extreme_channel_weights_fold_exactly_in_every_precision(block, args, norm):
    """Per-channel alpha and beta drawn from VALUES (mixes of zero, tiny, negative, one and large) for each norm."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    module = block(*args, wrc={"weights": "channel", "norm": norm, "alpha": 1.0, "beta": 1.0}).eval()
    randomise_batchnorms(module)
    set_coefficients(module, VALUES, VALUES, generator)
    check_folding(module, torch.randn(2, args[0], 16, 16, generator=generator))


@pytest.mark.parametrize("block, args", [BLOCKS[1], BLOCKS[3]], ids=["resnet-identity", "c3"])
@pytest.mark.parametrize("alpha, beta", list(itertools.product(VALUES, VALUES)), ids=str)
def test_extreme_scalar_weights_fold_exactly_in_every_precision(block, args, alpha, beta):
    """Every (alpha, beta) pair of VALUES on a single shortcut and on a chain of three."""
    torch.manual_seed(0)
    module = block(*args, wrc="scalar").eval()
    randomise_batchnorms(module)
    set_coefficients(module, alpha, beta, None)
    check_folding(module, torch.randn(2, args[0], 16, 16))


def test_detection_model_near_zero_alpha_in_half_precision():
    """csp_wrc-n with per-channel alpha ~ N(0, 0.01) and one channel per shortcut at 1e-7 (ReZero/LayerScale early in
    training): fused fp16 stays finite and within rounding of the unfused model, as the video pipeline runs it."""
    cfg = yaml_model_load("csp_wrc-n.yaml")
    cfg["wrc"] = "channel"
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=3, verbose=False).eval()
    for m in model.modules():
        if isinstance(m, WeightedShortcut):
            m.alpha.data = torch.randn(m.alpha.shape) * 0.01
            m.alpha.data[0] = 1e-7
    features = {}
    detect = model.model[-1]
    detect.register_forward_hook(lambda m, inputs, _: features.__setitem__("x", [t.float() for t in inputs[0]]))

    def detect_inputs(m, x):
        m(x)
        return features["x"]

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reference = detect_inputs(model, x)
        fused = copy.deepcopy(model).fuse(verbose=False)
        torch.testing.assert_close(detect_inputs(fused, x), reference, rtol=1e-4, atol=1e-4)
        unfused_half = detect_inputs(copy.deepcopy(model).half(), x.half())
        fused_half = detect_inputs(fused.half(), x.half())
    for ours, theirs, ref in zip(fused_half, unfused_half, reference):
        assert ours.isfinite().all()
        scale = ref.abs().max().item()
        assert (ours - ref).abs().max() <= 2 * (theirs - ref).abs().max() + 8 * HALF[torch.float16] * scale


def test_fuse_twice_is_a_no_op():
    module = C3WRC(8, 8, 2, wrc="channel").eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        once = fuse(module)(x)
        twice = fold_shortcuts(fuse(module))(x)
    torch.testing.assert_close(once, twice)


def test_folding_before_fuse_is_an_error_even_with_python_O():
    """Folding into convs that still have their BatchNorm raises (not an assert, which -O would strip)."""
    code = (
        "import torch; from cspdet.nn import C3WRC\n"
        "try:\n    C3WRC(8, 8, 2, wrc='channel').eval().fuse_shortcuts()\n"
        "except ValueError as e:\n    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=300)
    expected = "refused: cannot fold the shortcut weights of C3WRC: its convs still have their BatchNorms"
    assert expected in out.stdout, out.stderr
