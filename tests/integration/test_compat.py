"""The supported range is declared once (pyproject.toml) and matches docs/compat.md; every probe passes here."""

import re

import pytest
from conftest import REPO

from cspdet.integration import compat

pytestmark = pytest.mark.compat("probes")


def test_every_probe_passes_and_every_seam_is_installed():
    status = compat.status()
    assert status.installed and status.failed == {}
    assert "ultralytics.nn.tasks.parse_model" in status.patched
    assert "ultralytics.data.build.YOLODataset" in status.patched


def test_range_is_the_pyproject_requirement_and_the_compat_table():
    pin = re.search(r'"ultralytics(>=[\d.]+,<[\d.]+)"', (REPO / "pyproject.toml").read_text())[1]
    assert compat.supported_range() == pin
    table = (REPO / "docs" / "compat.md").read_text()
    releases = re.findall(r"^\| (\d+\.\d+\.\d+) \|", table, re.M)
    assert releases[0] == pin.split(",")[0][2:] and releases[-1] == compat.NEWEST_TESTED


@pytest.mark.parametrize(
    "release, tested",
    [("8.3.0", True), ("8.4.190", True), ("8.2.103", False), ("8.4.191", False), ("8.5.0", False), ("9", False)],
)
def test_tested_releases(release, tested):
    assert compat.is_tested(release) is tested


def test_disabled_seam_error_names_release_range_and_probe(monkeypatch):
    monkeypatch.setitem(compat.status().failed, "predictor", "TypeError: setup_source takes nothing")
    with pytest.raises(compat.UnsupportedUltralytics) as e:
        compat.require("predictor", use="cspdet video")
    assert str(e.value).startswith("cspdet video needs ultralytics internals that the installed ultralytics ")
    assert "probe 'predictor' failed: TypeError: setup_source takes nothing" in str(e.value)
    assert f"cspdet supports ultralytics{compat.supported_range()} (tested up to {compat.NEWEST_TESTED})" in str(
        e.value
    )
