"""The one place where cspdet reaches into ultralytics: YAML parsing, model YAML lookup, trainer hooks."""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.integration.plugin import install
from cspdet.integration.registry import REGISTRY, register_module

__all__ = ["REGISTRY", "install", "register_module"]
