"""Write one benchmark's section into docs/benchmarks.md, between markers of its own, with its command."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by the script named in it; rerun the command to refresh it.\n"


def update_section(name: str, title: str, body: str, command: str | None = None, doc: Path = DOC) -> Path:
    """Replace (or append) section ``name`` of ``doc`` with ``title``, the command that produced it and ``body``."""
    command = command or " ".join(["python", *sys.argv])
    section = f"<!-- {name}:start -->\n## {title}\n\nCommand: `{command}`\n\n{body.strip()}\n<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=doc.parent, prefix=".benchmarks.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, doc)
    return doc


def markdown_table(header: list[str], rows: list[list]) -> str:
    """Format rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
