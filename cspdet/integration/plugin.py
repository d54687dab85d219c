"""cspdet as an ultralytics plugin: ``install()`` patches ultralytics so that registered modules work everywhere.

``install()`` never raises: it probes every seam (``compat.status()``), installs those that passed, wraps
``BaseTrainer.__init__`` once for the seams that set trainers up (``TRAINER_SET_UP``), puts a guard in front of the
features whose seam failed (so that using them fails with ``UnsupportedUltralytics``), and warns once when the release
is untested or a probe failed. Stock ultralytics keeps working in every case. An uncaught cspdet error (bad input)
ends a process in one line, without a traceback.

Code that ``install()`` loads imports cspdet's leaf modules (``cspdet.eval.coco``, not ``cspdet.eval``): it may run
while the import of a cspdet subpackage is what brought ultralytics in.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from pathlib import Path

from cspdet.catalog import ROWS
from cspdet.errors import one_line_excepthook
from cspdet.integration import compat
from cspdet.patching import wrap, wrap_everywhere

# Seams whose ``set_up_trainer(trainer, cfg, overrides)`` runs around BaseTrainer.__init__, outermost first: every
# torchrun process meets its job before anything else reads the trainer's arguments, then an augmentation pipeline
# YAML becomes albumentations transforms.
TRAINER_SET_UP = ("distributed", "data")


def _refuse_blocks(original, d, *args, **kwargs):
    """parse_model guard while the registry seam is disabled: a row naming a cspdet module gets the clear error."""
    rows = [*d.get("backbone", []), *d.get("head", [])] if isinstance(d, dict) else []
    names = sorted({row[2] for row in rows if isinstance(row, list) and len(row) > 2 and row[2] in ROWS})
    if names:
        compat.require("registry", use=f"{d.get('yaml_file') or 'model YAML'}: module '{names[0]}'")
    return original(d, *args, **kwargs)


def _refuse_cspdet_data(original, dataset, *args, **kwargs):
    """check_det_dataset guard while the data seam is disabled: cspdet's data YAMLs get the clear error."""
    import yaml

    from cspdet.bundled import bundled

    name = str(dataset)
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file() and bundled("datasets", name):
            compat.require("data", use=f"data={name} (a cspdet dataset)")
        if Path(name).is_file():
            with open(name, encoding="utf-8") as f:
                content = yaml.safe_load(f)
            if isinstance(content, dict) and "annotations" in content:
                compat.require("data", use=f"{name}: 'annotations:'")
    return original(dataset, *args, **kwargs)


def _guard(seam: str):
    """Put a guard in front of the ultralytics function whose cspdet feature needs the failed ``seam``."""
    if seam == "registry":
        wrap_everywhere(importlib.import_module("ultralytics.nn.tasks"), "parse_model", _refuse_blocks)
    elif seam == "data":
        wrap_everywhere(importlib.import_module("ultralytics.data.utils"), "check_det_dataset", _refuse_cspdet_data)


def _warn(current: compat.Status):
    """One warning: an untested release, and each failed probe with what it disables."""
    from ultralytics.utils import LOGGER

    parts = []
    if not current.tested:
        parts.append(f"ultralytics {current.release} is not a release cspdet was tested with ({compat.tested_range()})")
    if current.failed:
        failed = "; ".join(
            f"probe '{s}' failed ({why}): {compat.SEAMS[s].provides} off" for s, why in current.failed.items()
        )
        parts.append(f"{failed}. Using those fails with an error that says so; stock ultralytics works as usual")
    else:
        parts.append("every probe passed, so cspdet is installed")
    LOGGER.warning("cspdet: " + "; ".join(parts))


def init_trainer(steps, original, trainer, cfg=None, overrides=None, _callbacks=None):
    """BaseTrainer.__init__ inside the ``set_up_trainer`` of each seam in ``steps`` (TRAINER_SET_UP, outermost first).

    Each one is a context manager that yields the ``(cfg, overrides)`` for the next one (and finally the trainer) and
    may finish the trainer's set-up once it is built.
    """
    from ultralytics.cfg import DEFAULT_CFG

    cfg = DEFAULT_CFG if cfg is None else cfg
    with contextlib.ExitStack() as stack:
        for step in steps:
            cfg, overrides = stack.enter_context(step(trainer, cfg, overrides))
        original(trainer, cfg, overrides, _callbacks)


def _wrap_trainer_init(current: compat.Status):
    """One wrap of BaseTrainer.__init__ for the installed seams of TRAINER_SET_UP; they are off if it fails."""
    seams = [s for s in TRAINER_SET_UP if s not in current.failed]
    if not seams:
        return
    try:
        from ultralytics.engine.trainer import BaseTrainer

        steps = [importlib.import_module(f"cspdet.integration.{s}").set_up_trainer for s in seams]
        wrap(BaseTrainer, "__init__", functools.partial(init_trainer, steps))
    except Exception as e:
        for seam in seams:
            current.failed[seam] = f"installing it failed: {type(e).__name__}: {e}"


def install():
    """Probe ultralytics and patch it so that registered modules work from YAMLs and the stock CLI (idempotent).

    Never raises: a seam whose probe or installation fails is left out, with one warning.
    """
    current = compat.status()
    if current.installed:
        return
    current.installed = True
    if not getattr(sys.excepthook, "cspdet", False):
        sys.excepthook = one_line_excepthook(sys.excepthook)
    for seam in compat.SEAMS:
        if seam in current.failed:
            continue
        try:
            install_seam = getattr(importlib.import_module(f"cspdet.integration.{seam}"), "install", None)
            if install_seam:
                install_seam()
        except Exception as e:  # a seam that passed its probe but cannot be installed is disabled as well
            current.failed[seam] = f"installing it failed: {type(e).__name__}: {e}"
    _wrap_trainer_init(current)
    for seam in current.failed:
        try:
            _guard(seam)
        except Exception:  # no guard: the host stays as it is
            pass
    if current.failed or not current.tested:
        _warn(current)
