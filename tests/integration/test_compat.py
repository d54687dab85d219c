"""Registration refuses an ultralytics outside the supported versions or with changed internals."""

import re
import sys

import pytest
from conftest import REPO, run

from cspdet.integration.compat import SUPPORTED_ULTRALYTICS

BREAKAGES = {
    "version": ("import ultralytics; ultralytics.__version__ = '8.4.999'", r"found 8\.4\.999"),
    "signature": (
        "from ultralytics.nn import tasks; p = tasks.parse_model; "
        "tasks.parse_model = lambda d, ch, verbose=True, strict=False: p(d, ch, verbose)",
        r"parse_model no longer takes \['d', 'ch', 'verbose'\]",
    ),
    "predictor": (
        "from ultralytics.engine.predictor import BasePredictor; "
        "BasePredictor.setup_source = lambda self, source, stride=None, channels=3: None",
        r"BasePredictor.setup_source no longer takes \['self', 'source', 'stride'\]",
    ),
    "behaviour": (
        "from ultralytics.nn import tasks; p = tasks.parse_model; "
        "exec('def parse_model(d, ch, verbose=True):\\n    return p({**d, \"width_multiple\": 0.5}, ch, verbose)'); "
        "tasks.parse_model = parse_model",
        r"parse_model resolved .* for the probe rows",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_unsupported_ultralytics_fails_at_registration(breakage):
    setup, message = BREAKAGES[breakage]
    result = run([sys.executable, "-c", f"{setup}\nimport cspdet"], env={"CSPDET_AUTOLOAD": "0"}, check=False)
    assert result.returncode != 0
    assert "UnsupportedUltralytics: cspdet supports ultralytics 8.4.190" in result.stderr
    assert re.search(message, result.stderr), result.stderr[-2000:]


def test_supported_version_matches_pyproject_pin():
    pin = re.search(r'"ultralytics==([\d.]+)"', (REPO / "pyproject.toml").read_text())[1]
    assert pin == SUPPORTED_ULTRALYTICS[-1]
