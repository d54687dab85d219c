"""Where dataset caches live: in one cache folder of the user's, never in the dataset's own folders.

Dataset folders are often read-only (cluster mounts, shared data), and a permission bit does not stop every writer (a
root process writes through it), so no cache is ever written next to the data. The folder is ``$CSPDET_CACHE_DIR``,
or ``cspdet_cache`` in ultralytics' user config folder (``$YOLO_CONFIG_DIR``, else ``~/.config/Ultralytics`` on
Linux), as ultralytics keeps its own runtime caches. A cache file is named after its source and the source's absolute
path; what it holds is keyed on the source's content by its user, so a stale file is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_DIR_ENV = "CSPDET_CACHE_DIR"


def cache_dir() -> Path:
    """The folder that holds cspdet's dataset caches."""
    from ultralytics.utils import USER_CONFIG_DIR

    return Path(os.environ.get(CACHE_DIR_ENV) or USER_CONFIG_DIR / "cspdet_cache").expanduser()


def cache_file(source: str | Path, suffix: str) -> Path:
    """The cache file of ``source`` (a COCO JSON, say) with ``suffix``: ``<stem>-<path hash><suffix>``."""
    source = Path(source).resolve()
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:16]
    return cache_dir() / f"{source.stem}-{digest}{suffix}"
