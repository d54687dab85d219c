"""Auto-load: the stock ultralytics entry points know cspdet without `import cspdet`, at no start-up cost."""

import re
import sys

import pytest
from helpers import REPO, run

pytestmark = pytest.mark.compat("lifecycle")

PY = sys.executable


def test_python_startup_imports_nothing_heavy():
    out = run([PY, "-c", "import sys; print(sorted({'torch', 'ultralytics', 'cspdet'} & set(sys.modules)))"]).stdout
    assert out.strip() == "[]"


def test_startup_hook_is_installed():
    """cspdet.pth imports the hook at start-up (its cost: `cspdet bench startup`, docs/benchmarks.md)."""
    stderr = run([PY, "-X", "importtime", "-c", "pass"]).stderr
    assert re.search(r"import time:\s+\d+ \|\s+\d+ \|\s+_cspdet_hook$", stderr, re.M), stderr[-2000:]


def test_ultralytics_knows_cspdet_without_import():
    code = "from ultralytics import YOLO; m = YOLO('cfg/csp_wrc.yaml'); import sys; print(type(m.model.model[2]))"
    out = run([PY, "-c", code], cwd=REPO).stdout
    assert "cspdet.nn.stages.C3WRC" in out


def test_autoload_can_be_switched_off():
    code = "from ultralytics import YOLO; import sys; print('cspdet' in sys.modules); YOLO('cfg/csp_wrc.yaml')"
    off = run([PY, "-c", code], cwd=REPO, env={"CSPDET_AUTOLOAD": "0"}, check=False)
    assert off.returncode != 0 and off.stdout.startswith("False") and "C3WRC" in off.stderr
    explicit = run([PY, "-c", "import cspdet; " + code], cwd=REPO, env={"CSPDET_AUTOLOAD": "0"})
    assert explicit.stdout.startswith("True")
