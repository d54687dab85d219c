"""Sections of the checkout's docs (docs/benchmarks.md, docs/compat.md, docs/robustness.md), each stamped with the
command that produced it, the checkout's commit and the date."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from cspdet.research.report import write_section

HEADER = "# Benchmarks\n\nEach section is written by the command named in it; rerun the command to refresh it.\n"
REPO = Path(__file__).resolve().parents[1]


def command_line(module: str) -> str:
    """The ``python -m MODULE ...`` command line that is running."""
    return shlex.join(["python", "-m", module, *sys.argv[1:]])


def commit(repo: Path = REPO) -> str:
    """The checkout's commit, with '+' when it has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True)
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def update_section(doc: str | Path, name: str, title: str, body: str, command: str) -> Path:
    """Replace (or append) section ``name`` of ``doc`` with ``title``, the command, commit and date, and ``body``."""
    stamp = f"Command: `{command}` (commit {commit()}, {time.strftime('%Y-%m-%d')})"
    return write_section(doc, name, title, f"{stamp}\n\n{body}", HEADER)
