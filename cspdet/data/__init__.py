"""COCO-format detection data: COCO JSON labels, the synthetic ``shapes`` dataset, albumentations pipelines."""

from __future__ import annotations

from pathlib import Path

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.bundled import bundled


def find_bundled(name) -> Path | None:
    """Return cspdet's bundled file ``name`` (relative to its ``datasets/`` folder), or None."""
    return bundled("datasets", name)
