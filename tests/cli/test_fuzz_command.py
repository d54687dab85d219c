"""`cspdet fuzz` as a user runs it: a subprocess that prints the outcome table and writes it into a markdown file."""

import sys
from pathlib import Path

from conftest import run

CSPDET = str(Path(sys.executable).with_name("cspdet"))


def test_fuzz_writes_the_table(tmp_path):
    """One mutant of each kind, trained where it passes, in a relative output folder (as `cspdet fuzz` is run from a
    checkout); the table goes into the markdown file, after its prose."""
    doc = tmp_path / "robustness.md"
    doc.write_text("# Robustness\n\nProse that the command keeps.\n")
    out = run([CSPDET, "fuzz", "--mutants", "14", "--out", "runs/fuzz", "--doc", str(doc)], cwd=tmp_path)
    assert "| **all** | **14** |" in out.stdout and f"Saved {doc}" in out.stdout and "| **0** |" in out.stdout
    text = doc.read_text()
    assert text.startswith("# Robustness\n\nProse that the command keeps.")
    assert "Command: `cspdet fuzz --mutants 14 --out runs/fuzz" in text and "| **all** | **14** |" in text
    assert "scored by the final validation (" in text and (tmp_path / "runs" / "fuzz" / "train" / "run").is_dir()


def test_bad_arguments_and_seed_files_are_one_line_errors(tmp_path):
    alone = run([CSPDET, "fuzz", "--json", str(tmp_path / "a.json")], check=False)
    assert alone.returncode == 1 and "cspdet fuzz: error: --json and --images go together" in alone.stderr
    (tmp_path / "a.json").write_text('{"images": []}')
    bad = run([CSPDET, "fuzz", "--json", str(tmp_path / "a.json"), "--images", str(tmp_path)], check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert f"cspdet fuzz: error: {tmp_path / 'a.json'}: missing top-level key 'annotations'" in bad.stderr
