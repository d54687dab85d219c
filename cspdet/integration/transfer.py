"""Pretrained weights into modified models: ``BaseModel.load`` matches layers by structure when rows moved.

``BaseModel.load`` is what every path to pretrained weights goes through (``pretrained=`` in ``yolo train``, through
the trainer's ``get_model``, and ``Model.load``). ultralytics matches tensors by key there, which loses every layer
after a row inserted into or removed from the checkpoint's YAML. The wrapper aligns the checkpoint model's rows with
the new model's (``cspdet.nn.transfer``); when a row differs, ultralytics' own ``load`` runs on a copy of the
checkpoint model whose layers sit at their new indices (so its head and class handling still apply), and one summary
replaces its "Transferred" line. When every row is where it was, ``load`` runs unchanged.
"""

from __future__ import annotations

import copy
import inspect
import logging

from torch import nn
from ultralytics.nn import tasks
from ultralytics.utils import LOGGER, colorstr

from cspdet.integration import registry
from cspdet.nn.transfer import Alignment, align, report


def _compared(row: list) -> list:
    """The row as aligned: a module that adopts an upstream stage (C3k2WRC) as that stage, with upstream's arguments.

    Rows of the upstream modules cspdet parses (Conv, C3, C2f, C3k2) get their constructor defaults filled in, so
    ``C3k2 [256, False, 0.25]`` and ``C3k2WRC [256, False, 0.25, False, 1, True, wrc]`` are the same layer.
    """
    f, n, m, args = row
    registration = registry.REGISTRY.get(m)
    if registration is not None and registration.adopts:
        args, _ = registration.split(list(args), f"row {row}")  # the weighting is left out: it adds tensors only
        m = registration.like
    if m in registry.RULES and args:
        skip = 4 if registry.RULES[m].repeats else 3  # self, c1, c2[, n]
        args = list(args)
        for p in list(inspect.signature(getattr(tasks, m).__init__).parameters.values())[skip + len(args) - 1 :]:
            if p.default is p.empty:
                break
            args.append(p.default)
    return [f, n, m, list(args)]


def _rows(model) -> list | None:
    """The YAML rows a model was built from, when it keeps them (``model.yaml``) and they match its layers."""
    d = getattr(model, "yaml", None)
    layers = getattr(model, "model", None)
    if not isinstance(d, dict) or not isinstance(layers, nn.Sequential):
        return None
    rows = [*d.get("backbone", []), *d.get("head", [])]
    if len(rows) != len(layers) or not all(isinstance(r, (list, tuple)) and len(r) == 4 for r in rows):
        return None
    return rows


def plan(source, model) -> Alignment | None:
    """The structural alignment of ``source``'s layers with ``model``'s, or None where loading by key is right.

    None when either model has no YAML rows, every row is where it was, or no layer matches at all.
    """
    rows = _rows(source), _rows(model)
    if None in rows:
        return None
    alignment = align(*rows, key=_compared)
    return None if alignment.identity or not alignment.pairs else alignment


def placed(source: nn.Module, alignment: Alignment) -> nn.Module:
    """A shallow copy of ``source`` whose layers sit at the target's indices (an empty module at new ones)."""
    moved = copy.copy(source)
    vars(moved)["_modules"] = dict(source._modules)
    moved.model = nn.Sequential(*(nn.Module() if i is None else source.model[i] for i in alignment.placement()))
    return moved


class _DropTransferred(logging.Filter):
    """Hold back ultralytics' "Transferred X/Y items" line: the structural summary replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Transferred ")


def load(original, model, weights, verbose=True):
    """BaseModel.load matching layers by structure when the checkpoint's rows moved (see the module docstring)."""
    source = (weights.get("ema") or weights["model"]) if isinstance(weights, dict) else weights
    try:
        alignment = plan(source, model)
    except Exception as e:  # an unforeseen YAML: ultralytics' own loading, as without cspdet
        LOGGER.warning(f"cspdet: pretrained layers not matched by structure ({type(e).__name__}: {e}); by key")
        alignment = None
    if alignment is None:
        return original(model, weights, verbose)
    drop = _DropTransferred()
    LOGGER.addFilter(drop)
    try:
        result = original(model, placed(source, alignment), verbose)
    finally:
        LOGGER.removeFilter(drop)
    if verbose:
        LOGGER.info(f"{colorstr('cspdet:')} {report(alignment, source.state_dict(), model.state_dict()).summary()}")
    return result


def probe():
    """Check that BaseModel.load takes (weights, verbose) and that the stages aligned with their upstream exist."""
    names = list(inspect.signature(tasks.BaseModel.load).parameters)
    if names[:3] != ["self", "weights", "verbose"]:
        raise TypeError(f"BaseModel.load takes {names}, not (self, weights, verbose)")
    missing = [m for m in registry.RULES if not isinstance(getattr(tasks, m, None), type)]
    if missing:
        raise AttributeError(f"ultralytics.nn.tasks has no {missing}")


def install():
    """Match pretrained layers by structure in BaseModel.load."""
    from cspdet.patching import wrap

    wrap(tasks.BaseModel, "load", load)
