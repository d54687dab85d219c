"""Albumentations pipelines declared in YAML and handed to ultralytics' own Albumentations step.

A pipeline file lists transforms by their albumentations class name, each with its arguments::

    transforms:
      - RandomRotate90: {p: 0.5}
      - OneOf:
          p: 0.2
          transforms:
            - Blur: {blur_limit: 3}
            - MedianBlur: {blur_limit: 3}
      - ToGray  # no arguments

Select it with ``yolo train ... augmentations=path/to/pipeline.yaml``. Ultralytics applies the transforms to every
training image after mosaic and before its HSV/flip steps, with the boxes in the bbox-aware ``yolo`` format.
"""

from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path

import yaml

from cspdet.bundled import bundled
from cspdet.errors import CspdetError


class PipelineError(CspdetError, ValueError):
    """An albumentations pipeline YAML that cannot be built; the message names the file and the entry."""


def _build(entry, where: str, A):
    """Build one transform (or composition) from a ``Name`` or ``{Name: {args}}`` entry."""
    if isinstance(entry, str):
        name, args = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, args = next(iter(entry.items()))
        args = {} if args is None else args
    else:
        raise PipelineError(f"{where}: expected a transform name or {{Name: {{arg: value}}}}, got {entry!r}")
    if not isinstance(args, dict):
        raise PipelineError(f"{where}: arguments of '{name}' must be a mapping, got {args!r}")
    cls = getattr(A, str(name), None)
    if not (inspect.isclass(cls) and issubclass(cls, (A.BasicTransform, A.BaseCompose))):
        known = [n for n in dir(A) if inspect.isclass(getattr(A, n)) and issubclass(getattr(A, n), A.BasicTransform)]
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PipelineError(f"{where}: '{name}' is not an albumentations {A.__version__} transform{hint}")
    if issubclass(cls, A.BaseCompose):
        members = args.get("transforms")
        if not isinstance(members, list) or not members:
            raise PipelineError(f"{where}: '{name}' needs a non-empty 'transforms:' list")
        args = {**args, "transforms": [_build(m, f"{where}.{name}.transforms[{i}]", A) for i, m in enumerate(members)]}
    parameters = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(args) - set(parameters))
        if unknown:
            raise PipelineError(f"{where}: '{name}' has no argument {', '.join(unknown)} (it takes "
                                f"{', '.join(p for p in parameters if p != 'self')})")  # fmt: skip
    try:
        return cls(**args)
    except Exception as e:
        raise PipelineError(f"{where}: {name}({args}) failed: {e}") from e


def load_pipeline(path) -> list:
    """Build the albumentations transforms declared in a pipeline YAML.

    Args:
        path (str | Path): Pipeline file; a name not found as given is looked up among cspdet's bundled datasets
            folder (e.g. ``augment/default.yaml``).

    Returns:
        (list): Albumentations transforms, as ultralytics' ``augmentations`` training argument takes them.

    Raises:
        PipelineError: An unknown transform, a bad argument, or a malformed file (named in the message).
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    file = Path(path) if Path(path).is_file() else bundled("datasets", path)
    if file is None:
        raise FileNotFoundError(f"albumentations pipeline '{path}' not found")
    try:
        d = yaml.safe_load(file.read_text(encoding="utf-8"))
    except Exception as e:
        raise PipelineError(f"{file}: not a valid YAML file ({e})") from e
    if not isinstance(d, dict):
        raise PipelineError(f"{file}: not a valid YAML file for a pipeline (its top level must be a mapping)")
    transforms = d.get("transforms")
    if not isinstance(transforms, list) or not transforms:
        raise PipelineError(f"{file}: expected a non-empty 'transforms:' list of albumentations transforms")
    built = [_build(t, f"{file}: transforms[{i}]", A) for i, t in enumerate(transforms)]
    try:  # as ultralytics composes them, so that bbox-incompatible pipelines fail here, not in a dataloader worker
        A.Compose(built, bbox_params=A.BboxParams(format="yolo", label_fields=["class_labels"]))
    except Exception as e:
        raise PipelineError(f"{file}: the transforms do not compose with boxes: {e}") from e
    return built
