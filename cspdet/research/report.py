"""What a benchmark returns: its measurements as rows of tables, with the text that says what was measured; and the
markdown section writer that reports (``cspdet ablate --doc``, docs/benchmarks.md) go through.

``cspdet bench NAME`` prints a report; ``python -m tools.bench NAME`` (a checkout's maintainer tool) also writes it,
with its command, commit and date, into docs/benchmarks.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cspdet.files import atomic_write


def markdown_table(header: list[str], rows: list[list]) -> str:
    """Format rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Table:
    """Rows under a header, with an optional caption (e.g. ``**imgsz 320**``) printed above them."""

    header: list[str]
    rows: list[list]
    caption: str = ""

    def markdown(self) -> str:
        table = markdown_table(self.header, self.rows)
        return f"{self.caption}\n\n{table}" if self.caption else table


@dataclass
class Report:
    """One benchmark's result: a section of docs/benchmarks.md.

    Args:
        section (str): The section's marker in docs/benchmarks.md, e.g. 'coco-eval'.
        title (str): Its heading.
        text (str): What was measured and how (machine, sizes, rounds), before the tables.
        tables (list[Table]): The measurements.
        ok (bool): Whether the checks the benchmark makes on its outputs passed (the command's exit status).
    """

    section: str
    title: str
    text: str
    tables: list[Table] = field(default_factory=list)
    ok: bool = True

    def markdown(self) -> str:
        """The text, then every table."""
        return "\n\n".join(part for part in [self.text, *(t.markdown() for t in self.tables)] if part)


def write_section(doc: str | Path, name: str, title: str, body: str, header: str = "") -> Path:
    """Replace (or append) section ``name`` of the markdown file ``doc`` (between ``<!-- name:start/end -->``
    markers) with ``title`` and ``body``, whole or not at all; a new file starts with ``header``."""
    doc = Path(doc)
    section = f"<!-- {name}:start -->\n## {title}\n\n{body.strip()}\n<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else header
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}\n".lstrip()
    with atomic_write(doc) as f:
        f.write(text)
    return doc
