"""`python -m tools.fuzz` as a maintainer runs it: a subprocess that prints the outcome table and writes it into a
markdown file."""

import sys

from helpers import REPO, run

FUZZ = [sys.executable, "-m", "tools.fuzz"]
CHECKOUT = {"PYTHONPATH": str(REPO)}  # the tools of this checkout, from another folder


def test_fuzz_writes_the_table(tmp_path):
    """One mutant of each kind, trained where it passes, in a relative output folder; the table goes into the markdown
    file, after its prose."""
    doc = tmp_path / "robustness.md"
    doc.write_text("# Robustness\n\nProse that the command keeps.\n")
    out = run([*FUZZ, "--mutants", "14", "--out", "runs/fuzz", "--doc", str(doc)], cwd=tmp_path, env=CHECKOUT)
    assert "| **all** | **14** |" in out.stdout and f"Saved {doc}" in out.stdout and "| **0** |" in out.stdout
    text = doc.read_text()
    assert text.startswith("# Robustness\n\nProse that the command keeps.")
    assert "Command: `python -m tools.fuzz --mutants 14 --out runs/fuzz" in text and "| **all** | **14** |" in text
    assert "scored by the final validation (" in text and (tmp_path / "runs" / "fuzz" / "train" / "run").is_dir()


def test_bad_arguments_and_seed_files_are_one_line_errors(tmp_path):
    alone = run([*FUZZ, "--json", str(tmp_path / "a.json")], env=CHECKOUT, check=False)
    assert alone.returncode == 2 and "error: --json and --images go together" in alone.stderr
    (tmp_path / "a.json").write_text('{"images": []}')
    bad = run([*FUZZ, "--json", str(tmp_path / "a.json"), "--images", str(tmp_path), "--no-doc"], env=CHECKOUT,
              check=False)  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert f"fuzz: error: {tmp_path / 'a.json'}: missing top-level key 'annotations'" in bad.stderr
