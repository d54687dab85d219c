"""YAML rows of registered modules get ultralytics' own channel, width, depth and repeat handling at every scale."""

import logging
from copy import deepcopy
from io import StringIO

import pytest
import torch
from torch import nn
from ultralytics.nn import tasks
from ultralytics.nn.modules import Conv
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils import LOGGER

import cspdet
from cspdet.integration import REGISTRY

pytestmark = pytest.mark.compat("parsing")

SCALES = "nslmx"
# ultralytics model, its CSP module, cspdet's weighted twin, and the upstream defaults of the arguments after c2
FAMILIES = [
    ("yolov5.yaml", "C3", "C3WRC", [True, 1, 0.5]),
    ("yolov8.yaml", "C2f", "C2fWRC", [False, 1, 0.5]),
    ("yolo11.yaml", "C3k2", "C3k2WRC", [False, 0.5, False, 1, True]),
]


def swapped(d, upstream, ours, defaults, wrc):
    """Return ``d`` with every ``upstream`` row replaced by ``ours`` with all arguments spelled out and ``wrc``."""
    d = deepcopy(d)
    for row in d["backbone"] + d["head"]:
        if row[2] == upstream:
            row[2], row[3] = ours, [*row[3], *defaults[len(row[3]) - 1 :], wrc]
    return d


def parse(d, scale):
    """Parse ``d`` at ``scale`` with ultralytics' parse_model on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        return tasks.parse_model({**deepcopy(d), "scale": scale}, ch=3, verbose=False)[0]


def layer_shapes(d, scale):
    model = parse(d, scale)
    return [{k: tuple(v.shape) for k, v in layer.state_dict().items()} for layer in model]


@pytest.mark.parametrize("family, upstream, ours, defaults", FAMILIES)
def test_parity_at_every_scale(family, upstream, ours, defaults):
    """wrc=false gives ultralytics' model layer for layer; wrc on only adds alpha/beta, at every scale."""
    d = yaml_model_load(family)
    plain, weighted = (swapped(d, upstream, ours, defaults, wrc) for wrc in (False, "channel"))
    for scale in SCALES:
        reference = layer_shapes(d, scale)
        assert layer_shapes(plain, scale) == reference, scale
        for ref, layer in zip(reference, layer_shapes(weighted, scale)):
            assert {k: v for k, v in layer.items() if not k.endswith(("wrc.alpha", "wrc.beta"))} == ref


@cspdet.register_module
class Squeeze(nn.Module):
    """A user block (c1, c2, r): 1x1 conv with a squeeze-excitation gate."""

    def __init__(self, c1, c2, r=4):
        super().__init__()
        self.conv = Conv(c1, c2, 1)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c2, max(c2 // r, 1), 1),
            nn.SiLU(),
            nn.Conv2d(max(c2 // r, 1), c2, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        y = self.conv(x)
        return y * self.gate(y)


@cspdet.register_module(like="C3", name="UserStage")
class Stage(nn.Module):
    """A user repeat block (c1, c2, n): n 3x3 convs."""

    def __init__(self, c1, c2, n=1):
        super().__init__()
        self.m = nn.Sequential(Conv(c1, c2, 3), *(Conv(c2, c2, 3) for _ in range(n - 1)))

    def forward(self, x):
        return self.m(x)


def user_yaml(block, stage):
    scales = {
        s: v
        for s, v in zip(
            SCALES, [[0.33, 0.25, 1024], [0.33, 0.5, 1024], [0.67, 0.75, 768], [1.0, 1.0, 512], [1.33, 1.25, 256]]
        )
    }
    return {
        "nc": 2,
        "scales": scales,
        "activation": "nn.ReLU()",
        "backbone": [
            [-1, 1, "Conv", [64, 3, 2]],
            [-1, 1, block, [100]],
            [-1, 6, stage, [600]],
            [-1, 1, "Conv", [64, 3, 2]],
        ],
        "head": [[[1, 2, 3], 1, "Detect", ["nc"]]],
    }


@pytest.mark.parametrize("scale", SCALES)
def test_user_modules_scale_like_upstream(scale):
    """A registered user block gets the c1/c2/n that ultralytics gives its own Conv and C3 rows."""
    ours, ref = parse(user_yaml("Squeeze", "UserStage"), scale), parse(user_yaml("Conv", "C3"), scale)
    assert isinstance(ours[1], Squeeze) and isinstance(ours[2], Stage)
    assert ours[1].conv.conv.out_channels == ref[1].conv.out_channels
    assert ours[2].m[0].conv.in_channels == ref[2].cv1.conv.in_channels
    assert ours[2].m[-1].conv.out_channels == ref[2].cv3.conv.out_channels
    assert len(ours[2].m) == len(ref[2].m)
    assert isinstance(ours[1].conv.act, nn.ReLU)  # the YAML activation reached the registered block
    assert Conv.default_act.__class__ is nn.SiLU  # and was put back afterwards
    assert ours[1].type.endswith("Squeeze") and ours[2].i == 2 and ours[2].f == -1


def test_user_modules_run():
    model = DetectionModel({**user_yaml("Squeeze", "UserStage"), "scale": "n"}, verbose=False)
    assert model.eval()(torch.zeros(1, 3, 64, 64))[0].shape[:2] == (1, 4 + 2)


def test_c3k2_scales_switch_c3k_on():
    d = swapped(yaml_model_load("yolo11.yaml"), *FAMILIES[2][1:], True)
    for scale, c3k in zip(SCALES, [False, False, True, True, True]):
        first = next(m.m[0] for m in parse(d, scale) if isinstance(m, cspdet.C3k2WRC))
        assert type(first).__name__ == ("C3kWRC" if c3k else "WRCBottleneck")


def test_layer_table_names_cspdet_modules():
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    LOGGER.addHandler(handler)
    try:
        DetectionModel("csp_wrc-n.yaml", verbose=True)
    finally:
        LOGGER.removeHandler(handler)
    table = stream.getvalue()
    assert table.count("cspdet.nn.stages.C3WRC") == 8
    assert "ultralytics.nn.modules.block.C3 " not in table
    assert "[32, 32, 1, True, 1, 0.5, 'scalar']" in table  # resolved c1, c2, n and the YAML's wrc value


def test_bare_names_and_scale_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = yaml_model_load("csp_wrc-s.yaml")
    assert d["scale"] == "s" and d["wrc"] == "scalar" and d["yaml_file"] == "csp_wrc-s.yaml"
    assert yaml_model_load("csp_wrc.yaml")["scale"] == ""
    assert yaml_model_load("yolo11s.yaml")["scale"] == "s"  # ultralytics' own names are untouched
    with pytest.raises(
        ValueError, match=r"scale 'q' is not defined in .*csp_wrc.yaml \(scales: one of n, s, m, l, x\)"
    ):
        yaml_model_load("csp_wrc-q.yaml")


@pytest.mark.parametrize(
    "row, message",
    [
        ([-1, 1, "C3WRCX", [64]], r"layer 1 \[-1, 1, 'C3WRCX', \[64\]\]: unknown module 'C3WRCX'"),
        ([-1, 1, "C3WRC", [64, True, 1, 0.5, "rezro"]], r"layer 1 .*unknown wrc preset 'rezro'"),
        ([-1, 2, "ResidualBlock", [64]], r"layer 1 .*2 stacked copies need equal input and output channels"),
    ],
)
def test_bad_rows_name_the_row(tmp_path, row, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"nc: 1\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - {row}\nhead:\n  - [[1], 1, Detect, [nc]]\n")
    with pytest.raises(ValueError, match=f"{cfg}.*{message}"):
        DetectionModel(str(cfg), verbose=False)


def test_register_module_rejects():
    with pytest.raises(TypeError, match="nn.Module subclass"):
        cspdet.register_module(int)
    with pytest.raises(ValueError, match="like='SPPF' is not one of"):
        cspdet.register_module(Squeeze, like="SPPF")
    with pytest.raises(ValueError, match="'C3' already names an ultralytics"):
        cspdet.register_module(Squeeze, name="C3")
    with pytest.raises(ValueError, match="already registered"):
        cspdet.register_module(Stage, name="Squeeze")


def test_builtin_registrations():
    assert {name: r.like for name, r in REGISTRY.items() if r.module.__module__.startswith("cspdet.")} == {
        "ResidualBlock": "Conv",
        "WeightedResidualBlock": "Conv",
        "C3WRC": "C3",
        "C2fWRC": "C2f",
        "CSPBlock": "C3",
        "C3k2WRC": "C3k2",
    }
