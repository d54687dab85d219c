"""The one place where cspdet reaches into ultralytics: one module per seam, each with ``probe()`` (see compat.py)."""

import importlib

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

_EXPORTS = {"REGISTRY": "registry", "register_module": "registry", "install": "plugin"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):  # the seams load on use, so that one that cannot load leaves the others usable
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cspdet.integration' has no attribute '{name}'")
    return getattr(importlib.import_module(f"cspdet.integration.{_EXPORTS[name]}"), name)
