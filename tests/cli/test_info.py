"""`cspdet info`: versions, the supported range, each probe, what is patched, where data and runs go, auto-load."""

import re
import sys
from pathlib import Path

import ultralytics
from helpers import run

CSPDET = str(Path(sys.executable).with_name("cspdet"))


def test_info_reports_the_installation(tmp_path):
    out = run([CSPDET, "info"], cwd=tmp_path).stdout
    assert f"ultralytics  {ultralytics.__version__} (tested;" in out
    assert "supported    ultralytics>=8.3.0,<8.5 (tested up to " in out and "auto-load    on" in out
    for seam in ("registry", "configs", "training", "data", "evaluation", "predictor"):
        assert f"\n  {seam} " in out and f"  {seam}" in out
    assert "FAILED" not in out and "  ultralytics.nn.tasks.parse_model\n" in out
    assert "datasets     " in out and "runs         " in out


def test_info_with_autoload_off_and_a_failed_probe(tmp_path):
    """A probe that fails is shown with its reason, and the exit status is 1."""
    (tmp_path / "sitecustomize.py").write_text(
        "import ultralytics.models.yolo.detect.val as v\n"
        "v.DetectionValidator.print_results = lambda self, extra=None: None\n"
    )
    result = run([CSPDET, "info"], cwd=tmp_path, env={"CSPDET_AUTOLOAD": "0", "PYTHONPATH": str(tmp_path)}, check=False)
    assert result.returncode == 1, result.stderr
    assert "auto-load    off (CSPDET_AUTOLOAD=0)" in result.stdout
    failed = r"\n  evaluation +FAILED: TypeError: DetectionValidator\.print_results takes \['extra'\], not \[\]"
    assert re.search(failed, result.stdout), result.stdout
    assert "DetectionValidator.print_results" not in result.stdout.split("patched in ultralytics:")[1]
