"""COCO-format detection data: COCO JSON labels, the synthetic ``shapes`` dataset, albumentations pipelines."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
DATASET_DIRS = (PACKAGE / "datasets", PACKAGE.parent / "datasets")  # installed wheel, then a source checkout


def find_bundled(name) -> Path | None:
    """Return cspdet's bundled file ``name`` (relative to its ``datasets/`` folder), or None."""
    if Path(name).is_absolute():
        return None
    return next((d / name for d in DATASET_DIRS if (d / name).is_file()), None)
