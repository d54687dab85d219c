"""The supported range is declared once (pyproject.toml) and matches docs/compat.md; every probe passes here; fuse()
keeps the outputs of every bundled model."""

import re
import sys

import pytest
import torch
from helpers import REPO, run
from torch import nn
from ultralytics.nn.tasks import DetectionModel

from cspdet.integration import compat
from cspdet.nn import WeightedShortcut
from cspdet.patching import PATCHED


@pytest.mark.compat("probes")
def test_every_probe_passes_and_every_seam_is_installed():
    status = compat.status()
    assert status.installed and status.failed == {}
    assert "ultralytics.nn.tasks.parse_model" in PATCHED
    assert "ultralytics.data.build.YOLODataset" in PATCHED
    assert PATCHED.count("ultralytics.engine.trainer.BaseTrainer.__init__") == 1  # one wrap for every seam


def test_range_is_the_pyproject_requirement_and_the_compat_table():
    pin = re.search(r'"ultralytics(>=[\d.]+,<[\d.]+)"', (REPO / "pyproject.toml").read_text())[1]
    assert compat.supported_range() == pin
    table = (REPO / "docs" / "compat.md").read_text()
    releases = re.findall(r"^\| (\d+\.\d+\.\d+) \|", table, re.M)
    assert releases[0] == pin.split(",")[0][2:] and releases[-1] == compat.NEWEST_TESTED


@pytest.mark.compat("probes")
@pytest.mark.parametrize(
    "release, tested",
    [("8.3.0", True), ("8.4.190", True), ("8.2.103", False), ("8.4.191", False), ("8.5.0", False), ("9", False)],
)
def test_tested_releases(release, tested):
    assert compat.is_tested(release) is tested


@pytest.mark.compat("probes")
def test_disabled_seam_error_names_release_range_and_probe(monkeypatch):
    monkeypatch.setitem(compat.status().failed, "predictor", "TypeError: setup_source takes nothing")
    with pytest.raises(compat.UnsupportedUltralytics) as e:
        compat.require("predictor", use="cspdet video")
    assert str(e.value).startswith("cspdet video needs ultralytics internals that the installed ultralytics ")
    assert "probe 'predictor' failed: TypeError: setup_source takes nothing" in str(e.value)
    assert f"cspdet supports ultralytics{compat.supported_range()} (tested up to {compat.NEWEST_TESTED})" in str(
        e.value
    )


@pytest.mark.compat("fuse")
@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "cfg").glob("*.yaml")))
def test_fused_model_equals_unfused(name):
    """ultralytics' fuse() with cspdet's folding keeps every bundled model's outputs, with trained-looking weights."""
    torch.manual_seed(0)
    model = DetectionModel(f"{name}-n.yaml", verbose=False).eval()
    for m in model.modules():
        if isinstance(m, WeightedShortcut):
            for p in m.parameters():
                nn.init.uniform_(p, 0.5, 1.5)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_var, 0.5, 2.0)
            nn.init.uniform_(m.running_mean, -0.5, 0.5)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        after = model.fuse(verbose=False)(x)[0]
    torch.testing.assert_close(after, before, atol=1e-3, rtol=1e-3)
    shortcuts = [m for m in model.modules() if isinstance(m, WeightedShortcut)]
    assert all(m.frozen for m in shortcuts) and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_a_seam_is_off_when_a_seam_it_needs_failed(tmp_path):
    """The training probe fails (a callback event is gone): registry, which needs it, is off too, saying why."""
    (tmp_path / "sitecustomize.py").write_text(
        "from ultralytics.utils.callbacks.base import default_callbacks\ndel default_callbacks['on_train_end']\n"
    )
    env = {"CSPDET_AUTOLOAD": "0", "PYTHONPATH": str(tmp_path)}
    out = run([sys.executable, "-m", "cspdet", "info"], cwd=tmp_path, env=env, check=False).stdout
    assert re.search(r"\n  training +FAILED: KeyError: .*callback events \['on_train_end'\] are gone", out), out
    assert re.search(r"\n  registry +FAILED: needs 'training', which is off", out), out
    assert re.search(r"\n  configs +ok", out)
    assert "ultralytics.nn.tasks.BaseModel.fuse" not in out.split("patched in ultralytics:")[1]
