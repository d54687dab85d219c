"""cspdet as an ultralytics plugin: ``install()`` patches ultralytics so that registered modules work everywhere.

``install()`` never raises: it probes every seam (``compat.status()``), installs those that passed, puts a guard in
front of the features whose seam failed (so that using them fails with ``UnsupportedUltralytics``), and warns once
when the release is untested or a probe failed. Stock ultralytics keeps working in every case.

Code that ``install()`` loads imports cspdet's leaf modules (``cspdet.eval.coco``, not ``cspdet.eval``): it may run
while the import of a cspdet subpackage is what brought ultralytics in.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from pathlib import Path

from cspdet.integration import compat

# cspdet's YAML modules: name -> (defining module, upstream module whose YAML parsing they get)
BLOCKS = {
    "ResidualBlock": ("cspdet.nn.blocks", "Conv"),
    "WeightedResidualBlock": ("cspdet.nn.blocks", "Conv"),
    "C3WRC": ("cspdet.nn.stages", "C3"),
    "CSPBlock": ("cspdet.nn.stages", "C3"),
    "C2fWRC": ("cspdet.nn.stages", "C2f"),
    "C3k2WRC": ("cspdet.nn.stages", "C3k2"),
}


def _wrapped(original, replacement):
    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        return replacement(original, *args, **kwargs)

    wrapped.cspdet = True
    return wrapped


def wrap(owner, name: str, replacement):
    """Replace ``owner.name`` (a function or method) by one that calls ``replacement(original, *args)``."""
    setattr(owner, name, _wrapped(getattr(owner, name), replacement))
    owner_name = owner.__name__ if isinstance(owner, type(sys)) else f"{owner.__module__}.{owner.__qualname__}"
    compat.status().patched.append(f"{owner_name}.{name}")


@contextlib.contextmanager
def replaced(owner, **values):
    """Inside, ``owner``'s attributes named by ``values`` take those values; the originals come back after."""
    originals = {name: getattr(owner, name) for name in values}
    try:
        for name, value in values.items():
            setattr(owner, name, value)
        yield
    finally:
        for name, value in originals.items():
            setattr(owner, name, value)


def wrap_everywhere(module, name: str, replacement):
    """Wrap the function ``module.name`` as ``wrap`` does, and in every ultralytics module that imported it."""
    original = getattr(module, name)
    wrap(module, name, replacement)
    for other in [m for n, m in sys.modules.items() if n.startswith("ultralytics")]:
        if other is not module and getattr(other, name, None) is original:
            setattr(other, name, getattr(module, name))


def register_blocks():
    """Make cspdet's blocks usable in model YAMLs and in restricted (weights-only) checkpoint loading."""
    import torch

    from cspdet.integration.registry import register_module
    from cspdet.nn.blocks import WRCBottleneck
    from cspdet.nn.stages import C3kWRC
    from cspdet.nn.wrc import WeightedShortcut

    for name, (module, like) in BLOCKS.items():
        register_module(getattr(importlib.import_module(module), name), like=like)
    torch.serialization.add_safe_globals([WeightedShortcut, WRCBottleneck, C3kWRC])  # inner classes in checkpoints


def _refuse_blocks(original, d, *args, **kwargs):
    """parse_model guard while the registry seam is disabled: a row naming a cspdet module gets the clear error."""
    rows = [*d.get("backbone", []), *d.get("head", [])] if isinstance(d, dict) else []
    names = sorted({row[2] for row in rows if isinstance(row, list) and len(row) > 2 and row[2] in BLOCKS})
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
        failed = "; ".join(f"probe '{s}' failed ({why}): {compat.SEAMS[s]} off" for s, why in current.failed.items())
        parts.append(f"{failed}. Using those fails with an error that says so; stock ultralytics works as usual")
    else:
        parts.append("every probe passed, so cspdet is installed")
    LOGGER.warning("cspdet: " + "; ".join(parts))


def install():
    """Probe ultralytics and patch it so that registered modules work from YAMLs and the stock CLI (idempotent).

    Never raises: a seam whose probe or installation fails is left out, with one warning.
    """
    current = compat.status()
    if current.installed:
        return
    current.installed = True
    for seam in compat.SEAMS:
        if seam not in current.failed:
            try:
                install_seam = getattr(importlib.import_module(f"cspdet.integration.{seam}"), "install", None)
                if install_seam:
                    install_seam()
                continue
            except Exception as e:  # a seam that passed its probe but cannot be installed is disabled as well
                current.failed[seam] = f"installing it failed: {type(e).__name__}: {e}"
        try:
            _guard(seam)
        except Exception:  # no guard: the host stays as it is
            pass
    if current.failed or not current.tested:
        _warn(current)
