"""`python -m tools.bench`: a benchmark's tables written into the doc with the command, commit and date."""

import re
import subprocess
import sys

from helpers import REPO, run


def test_writes_and_replaces_its_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    command = [sys.executable, "-m", "tools.bench", "--doc", str(doc), "startup", "--runs", "2"]
    out = run(command, cwd=REPO)
    assert f"Wrote startup into {doc}" in out.stdout
    text = doc.read_text()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    stamp = re.search(r"Command: `python -m tools.bench --doc \S+ startup --runs 2` \(commit (\w+)\+?, [\d-]+\)", text)
    assert text.startswith("# Benchmarks") and stamp and stamp[1] == head.strip()
    assert "| `import _cspdet_hook` (cumulative) |" in text
    run(command, cwd=REPO)
    assert doc.read_text().count("<!-- startup:start -->") == 1  # rerunning replaces its section
