"""Start-up hook that loads cspdet right after the ``ultralytics`` package is imported.

``cspdet.pth`` imports this module at interpreter start-up, so it must stay cheap and use the standard library only:
it installs one meta-path finder and nothing else. Processes that never import ultralytics never import cspdet or
torch because of it. Set ``CSPDET_AUTOLOAD=0`` to switch it off; ``import cspdet`` still registers everything.
Nothing here may raise into ``import ultralytics``: a callback that fails prints one warning and stays out.
"""

import os
import sys

ENV_VAR = "CSPDET_AUTOLOAD"


def enabled():
    """Return whether auto-load is on (anything but 0/false/no/off in ``CSPDET_AUTOLOAD``)."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in {"0", "false", "no", "off"}


class PostImportFinder:
    """One-shot meta-path finder that calls ``callbacks`` once the top-level package ``name`` has been executed."""

    def __init__(self, name: str):
        self.name, self.callbacks = name, []

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)  # one shot: let the regular finders locate the real package
        from importlib.util import find_spec

        spec = find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_call(module):
            exec_module(module)
            for callback in self.callbacks:
                try:
                    callback()
                except Exception as e:  # a plugin never breaks its host
                    _warn(f"{callback.__module__}.{callback.__qualname__} failed ({type(e).__name__}: {e})")

        spec.loader.exec_module = exec_then_call
        return spec


def after_import(name: str, callback):
    """Call ``callback()`` once the top-level package ``name`` is imported: now if it already is."""
    if name in sys.modules:
        callback()
        return
    finder = next((f for f in sys.meta_path if isinstance(f, PostImportFinder) and f.name == name), None)
    if finder is None:
        finder = PostImportFinder(name)
        sys.meta_path.insert(0, finder)
    finder.callbacks.append(callback)


def _warn(problem: str):
    print(f"WARNING cspdet was not loaded: {problem}; set {ENV_VAR}=0 to stop trying", file=sys.stderr)


def _load_cspdet():
    import cspdet  # noqa: F401  (installs itself into the ultralytics just imported)


if enabled():
    after_import("ultralytics", _load_cspdet)
