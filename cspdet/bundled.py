"""Files shipped with cspdet: model YAMLs (cfg/) and data YAMLs (datasets/)."""

from __future__ import annotations

from pathlib import Path

ROOTS = (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1])  # installed wheel, source checkout


def bundled(folder: str, name) -> Path | None:
    """Return the shipped file ``folder/name`` (e.g. ``bundled("cfg", "csp_wrc.yaml")``), or None."""
    if Path(name).is_absolute():
        return None
    return next((path for path in (root / folder / name for root in ROOTS) if path.is_file()), None)
