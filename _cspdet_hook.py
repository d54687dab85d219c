"""Start-up hook that loads cspdet right after the ``ultralytics`` package is imported.

``cspdet.pth`` imports this module at interpreter start-up, so it must stay cheap and use the standard library only:
it installs one meta-path finder and nothing else. Processes that never import ultralytics never import cspdet or
torch because of it. Set ``CSPDET_AUTOLOAD=0`` to switch it off; ``import cspdet`` still registers everything.
"""

import os
import sys

ENV_VAR = "CSPDET_AUTOLOAD"


def enabled():
    """Return whether auto-load is on (anything but 0/false/no/off in ``CSPDET_AUTOLOAD``)."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in {"0", "false", "no", "off"}


class UltralyticsFinder:
    """Meta-path finder that runs ``import cspdet`` once the ``ultralytics`` package has finished executing."""

    def find_spec(self, name, path=None, target=None):
        if name != "ultralytics":
            return None
        sys.meta_path.remove(self)  # one shot: let the regular finders locate the real package
        from importlib.util import find_spec

        spec = find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_load_cspdet(module):
            exec_module(module)
            if "cspdet" not in sys.modules:  # a cspdet import in progress registers itself when it finishes
                import cspdet  # noqa: F401

        spec.loader.exec_module = exec_then_load_cspdet
        return spec


if enabled() and "ultralytics" not in sys.modules:
    sys.meta_path.insert(0, UltralyticsFinder())
