"""The matrix's pytest plugin and its docs/compat.md sections, on a small test file run by pytest itself."""

import json
import sys

import pytest
from helpers import REPO, run

from tools.compat import write_doc
from tools.compat.plugin import REPORT_ENV

TESTS = """
import pytest

@pytest.mark.compat("parsing")
def test_a():
    pass

@pytest.mark.compat("parsing")
def test_b():
    assert False

@pytest.mark.compat("safe loading")
@pytest.mark.skipif(True, reason="not in this release")
def test_c():
    pass

def test_not_in_the_selection():
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "two xdist workers"])
def test_plugin_records_each_compat_test(tmp_path, workers):
    (tmp_path / "test_sample.py").write_text(TESTS)
    (tmp_path / "test_needs_newer.py").write_text("import not_in_this_release\n")  # as old releases' files
    report = tmp_path / "report.json"
    args = [sys.executable, "-m", "pytest", "-p", "tools.compat.plugin", "-p", "no:cacheprovider", "-q", *workers]
    env = {REPORT_ENV: str(report), "PYTHONPATH": str(REPO)}  # the plugin of this checkout, from another folder
    args += ["--continue-on-collection-errors", "test_sample.py", "test_needs_newer.py"]  # as tools.compat runs it
    result = run(args, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 1  # test_b
    found = json.loads(report.read_text())
    assert {name.split("::")[1]: (t["check"], t["outcome"]) for name, t in found["tests"].items()} == {
        "test_a": ("parsing", "passed"),
        "test_b": ("parsing", "failed"),
        "test_c": ("safe loading", "skipped"),
    }
    assert all(t["seconds"] >= 0 for t in found["tests"].values())
    assert found["collection_errors"] == ["test_needs_newer.py"]
    assert set(found["features"]) and all(isinstance(v, bool) for v in found["features"].values())


def test_doc_sections(tmp_path):
    doc = tmp_path / "compat.md"
    sections = "<!-- matrix:start -->\n<!-- matrix:end -->\n\n<!-- features:start -->\n<!-- features:end -->"
    doc.write_text(f"# Compatibility\n\n{sections}\n\nkept\n")
    release = {
        "python": "3.11.7", "torch": "2.15.0", "environment seconds": 3.2, "test seconds": 300.0, "failed": [],
        "collection errors": [], "features": {"weights-only loading": False},
        "checks": {"parsing": {"outcome": "passed", "seconds": 12.3},
                   "safe loading": {"outcome": "skipped", "seconds": 0}},
    }  # fmt: skip
    newer = {**release, "features": {"weights-only loading": True}, "failed": ["tests/x.py::test_y"]}
    newer["checks"] = {**release["checks"], "safe loading": {"outcome": "failed", "seconds": 4.0}}
    write_doc(doc, {"8.4.67": newer, "8.3.0": release}, "python -m tools.compat 8.3.0 8.4.67")
    text = doc.read_text()
    assert text.startswith("# Compatibility") and text.rstrip().endswith("kept")
    assert "Command: `python -m tools.compat 8.3.0 8.4.67` (commit " in text
    assert text.index("| 8.3.0 |") < text.index("| 8.4.67 |")  # by version
    assert "| 8.3.0 | not run | ✓ 12 s | not run | not run | n/a |" in text
    assert "| ✗ FAILED 4 s |" in text and "- 8.4.67: failed tests/x.py::test_y" in text
    assert "| weights-only loading | 8.4.67 | 1 |" in text
