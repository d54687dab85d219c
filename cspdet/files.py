"""Files that appear whole or not at all: written to a temporary sibling, then renamed into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs):
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success, delete it on error.

    Args:
        path (str | Path): The file to write; its folder is created.
        mode (str): 'w' (text) or 'wb' (binary).
        **open_kwargs: Passed to ``open`` (``encoding``, ``newline``, ...).

    Examples:
        >>> with atomic_write("metrics.json") as f:
        ...     f.write("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
