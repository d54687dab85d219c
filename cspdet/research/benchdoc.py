"""Write one benchmark's section into a markdown file (docs/benchmarks.md), between markers of its own."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from cspdet.files import atomic_write

HEADER = "# Benchmarks\n\nEach section is written by the command named in it; rerun the command to refresh it.\n"


def command_line() -> str:
    """The ``cspdet ...`` command line that is running."""
    return shlex.join(["cspdet", *sys.argv[1:]])


def update_section(doc: str | Path, name: str, title: str, body: str, command: str | None = None) -> Path:
    """Replace (or append) section ``name`` of ``doc`` with ``title``, the command that produced it and ``body``."""
    doc = Path(doc)
    section = (
        f"<!-- {name}:start -->\n## {title}\n\nCommand: `{command or command_line()}`\n\n{body.strip()}\n"
        f"<!-- {name}:end -->"
    )
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}\n"
    with atomic_write(doc) as f:
        f.write(text)
    return doc


def markdown_table(header: list[str], rows: list[list]) -> str:
    """Format rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
