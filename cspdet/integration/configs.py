"""Model YAML lookup: cspdet's bundled configs by bare name, the scale picked by a ``-<scale>`` suffix, and the
modules that a YAML's ``imports:`` lists, imported before its rows are parsed."""

from __future__ import annotations

import re
from pathlib import Path

from cspdet.bundled import bundled
from cspdet.imports import import_items


def _existing(path: Path) -> Path | None:
    if path.is_file():
        return path
    return bundled("cfg", path.name) if path.parent == Path(".") else None  # a bare name: the bundled configs


def find_model_yaml(path) -> tuple[Path, str] | None:
    """Resolve a model YAML name the way cspdet extends ultralytics.

    ``csp_wrc.yaml`` is found among the bundled configs when it is not a local file, and ``csp_wrc-s.yaml`` means
    ``csp_wrc.yaml`` at scale ``s``. Returns ``(file, scale)`` with ``scale`` empty when none was asked for, or None
    when ultralytics' own lookup should handle the name (an existing file, or an ultralytics model such as
    ``yolo11s.yaml``).
    """
    path = Path(path)
    if path.is_file() or path.suffix not in {".yaml", ".yml"}:
        return None
    bundled = _existing(path)
    if bundled:
        return bundled, ""
    match = re.fullmatch(r"(.+)-(\w+)", path.stem)
    base = match and _existing(path.with_name(match[1] + path.suffix))
    return (base, match[2]) if base else None


def load_model_yaml(original, path) -> dict:
    """Run ultralytics' ``original`` yaml_model_load with cspdet's lookup (an unknown scale is an error), then import
    the YAML's ``imports:`` (``cspdet.imports.import_items``) before anything parses its rows."""
    found = find_model_yaml(path)
    if found is None:
        d = original(path)
        file = Path(path)
    else:
        file, scale = found
        d = original(file)
        scales = d.get("scales") or {}
        if scale and scale not in scales:
            hint = f"one of {', '.join(scales)}" if scales else "none: the file defines no 'scales'"
            raise ValueError(f"{path}: scale '{scale}' is not defined in {file} (scales: {hint})")
        d["scale"] = scale or d["scale"]
        d["yaml_file"] = str(path)
    if d.get("imports") is not None:
        import_items(d["imports"], file)
    return d


def probe():
    """Check that yaml_model_load reads a bundled model YAML and guesses the scale from the file name."""
    from ultralytics.nn import tasks

    d = tasks.yaml_model_load(bundled("cfg", "csp_wrc.yaml"))
    if not {"backbone", "head", "scale"} <= set(d):
        raise KeyError(f"yaml_model_load returned the keys {sorted(d)}, without backbone, head or scale")


def install():
    """Look model YAMLs up with cspdet's bundled names and scale suffix, wherever ultralytics loads one."""
    from ultralytics.nn import tasks

    from cspdet.patching import wrap_everywhere

    wrap_everywhere(tasks, "yaml_model_load", load_model_yaml)
