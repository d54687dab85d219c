"""Users' block modules: a model YAML's ``imports:``, installed packages' entry points, and checkpoints that find their
modules again in a fresh process.

- ``import_items`` imports the items of a model YAML's ``imports:`` list: dotted module names, looked up on
  ``sys.path`` and then in the YAML's folder, or ``.py`` files inside that folder.
- ``load_entry_point`` imports the module that an installed package declares for a block name (entry point group
  ``cspdet.modules``), only when a YAML row names a block that is not known yet.
- Every ``nn.Module`` class of a module brought in so, and every class given to ``cspdet.register_module``, pickles
  through ``rebuild`` with where its module came from (``Source``): loading a checkpoint then imports that module
  first, by name or from the recorded folder, in any process and from any folder.
- Weights-only loading (``ULTRALYTICS_SAFE_LOAD=true``, ``torch.load(weights_only=True)``) imports none of those
  modules unless ``CSPDET_SAFE_IMPORTS`` names it, and builds only classes allowed for it (registered ones).
"""

from __future__ import annotations

import copyreg
import functools
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cspdet.errors import CspdetError

ENTRY_POINTS = "cspdet.modules"
SAFE_IMPORTS_ENV = "CSPDET_SAFE_IMPORTS"


class BlockImportError(CspdetError, ImportError):
    """A module of users' blocks that cannot be found or imported; the message names it and says what to do."""


@dataclass(frozen=True)
class Source:
    """Where a module of users' blocks came from, as its classes' pickles record it.

    Args:
        module (str): Its name in ``sys.modules``.
        folder (str): The folder its top-level package (or its file) was found in.
        by_path (bool): It came from a ``.py`` path (``folder/<module>.py``), which is tried before ``sys.path``.
    """

    module: str
    folder: str
    by_path: bool = False


SOURCES: dict[str, Source] = {}  # module name -> where it came from
_SCANNED: set[str] = set()  # modules whose classes all pickle through rebuild


def _is_path(item: str) -> bool:
    return item.endswith(".py") or "/" in item or "\\" in item


def _missing(error: ModuleNotFoundError, name: str) -> bool:
    """Whether ``error`` says that ``name`` (or a package above it) is missing, not a module that ``name`` imports."""
    return bool(error.name) and (name == error.name or name.startswith(f"{error.name}."))


def _import_file(name: str, file: Path):
    """Import ``file`` as the module ``name``, its folder on sys.path while it runs (for modules next to it)."""
    known = sys.modules.get(name)
    if known is not None:
        if Path(getattr(known, "__file__", "") or "").resolve() != file:
            raise BlockImportError(f"module name '{name}' is taken by {getattr(known, '__file__', None) or known}")
        return known
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    SOURCES[name] = Source(name, str(file.parent), by_path=True)  # before its classes register themselves
    try:
        with _on_path(file.parent):
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name], SOURCES[name]
        raise
    return module


class _on_path:
    """Put ``folder`` first on sys.path while inside."""

    def __init__(self, folder: Path):
        self.folder = str(folder)

    def __enter__(self):
        sys.path.insert(0, self.folder)
        importlib.invalidate_caches()  # files written since the folder was last listed

    def __exit__(self, *exc):
        sys.path.remove(self.folder)


def _import_name(name: str, folder: Path | None):
    """Import ``name`` from sys.path, else from ``folder``; None when neither has it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not _missing(e, name) or folder is None or not folder.is_dir():
            raise
    try:
        with _on_path(folder):
            return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if _missing(e, name):
            return None
        raise


def _folder_of(module) -> str | None:
    """The folder that holds ``module``'s top-level package (or file), from its ``__file__``."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    levels = module.__name__.count(".") + (path.name == "__init__.py")
    return str(path.parents[levels])


def _record(module, by_path: bool = False) -> Source | None:
    """Record where ``module`` came from (cspdet's own modules and ``__main__`` are not recorded)."""
    name, folder = module.__name__, _folder_of(module)
    if folder is None or name == "__main__" or name.split(".")[0] == "cspdet":
        return None
    return SOURCES.setdefault(name, Source(name, folder, by_path))


def remember(module, by_path: bool = False):
    """Record where ``module`` came from; its ``nn.Module`` classes pickle through ``rebuild`` from now on."""
    if _record(module, by_path) is None or module.__name__ in _SCANNED:
        return
    _SCANNED.add(module.__name__)
    from torch import nn

    for value in list(vars(module).values()):
        if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == module.__name__:
            copyreg.pickle(value, _reduce)


def remember_class(cls: type):
    """Make ``cls`` (a registered block) pickle through ``rebuild``, and with it the other classes of its module."""
    module = sys.modules.get(cls.__module__)
    if module is not None and _record(module) is not None:
        copyreg.pickle(cls, _reduce)  # the rest of its module may not be defined yet: _reduce remembers it


def _reduce(obj):
    """Pickle ``obj`` as ``rebuild(source, class name)`` plus its state (copyreg reducer; deepcopy uses it too)."""
    cls = type(obj)
    reduced = obj.__reduce_ex__(4)
    source = SOURCES.get(cls.__module__)
    if source is None or getattr(reduced[0], "__name__", "") != "__newobj__" or reduced[1] != (cls,):
        return reduced  # a class with a reduction of its own keeps it
    if cls.__module__ not in _SCANNED and cls.__module__ in sys.modules:
        remember(sys.modules[cls.__module__], source.by_path)  # the classes used inside this one, pickled next
    return (rebuild, (source.module, source.folder, source.by_path, cls.__qualname__), *reduced[2:])


def _allowed_for_weights_only(cls: type) -> bool:
    import torch

    return any(e is cls or (isinstance(e, tuple) and e[0] is cls) for e in torch.serialization.get_safe_globals())


def _import_recorded(source: Source):
    """Import the module of ``source`` as a checkpoint records it; raise saying how to make it importable."""
    folder = Path(source.folder)
    file = folder / f"{source.module}.py"
    try:
        if source.by_path and file.is_file():
            return _import_file(source.module, file.resolve())
        module = _import_name(source.module, folder)
    except BlockImportError:
        raise
    except Exception as e:
        raise BlockImportError(
            f"a checkpoint needs module '{source.module}', whose import failed: {type(e).__name__}: {e}"
        ) from e
    if module is None:
        raise BlockImportError(
            f"a checkpoint needs module '{source.module}' (recorded in {source.folder}), which is neither on sys.path "
            f"nor there any more: install its package, add its folder to PYTHONPATH, or put it back in {source.folder}"
        )
    return module


def rebuild(module: str, folder: str, by_path: bool, qualname: str):
    """Unpickle an instance of ``module.qualname``: import the module as recorded, then a blank instance (pickle then
    sets its state). Under weights-only loading only an imported or ``CSPDET_SAFE_IMPORTS`` module is used, and only
    a class allowed for that mode."""
    weights_only = sys._getframe(1).f_globals.get("__name__") == "torch._weights_only_unpickler"
    source = Source(module, folder, by_path)
    loaded = sys.modules.get(module)
    if loaded is None and weights_only:
        allowed = {m.strip() for m in os.environ.get(SAFE_IMPORTS_ENV, "").split(",")}
        if module not in allowed:
            raise BlockImportError(
                f"a checkpoint needs {module}.{qualname}, and weights-only loading (ULTRALYTICS_SAFE_LOAD=true) "
                f"imports only the modules allowed: {SAFE_IMPORTS_ENV}={module}, or import {module} before loading"
            )
        try:
            loaded = importlib.import_module(module)
        except ImportError as e:
            raise BlockImportError(f"{SAFE_IMPORTS_ENV} allows '{module}', but importing it failed: {e}") from e
    elif loaded is None:
        loaded = _import_recorded(source)
    remember(loaded, by_path)
    cls = loaded
    try:
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except AttributeError:
        raise BlockImportError(
            f"a checkpoint needs {module}.{qualname}, but module {module} ({loaded.__file__}) has no such class"
        ) from None
    if weights_only and not _allowed_for_weights_only(cls):
        raise BlockImportError(
            f"a checkpoint needs {module}.{qualname}, which weights-only loading (ULTRALYTICS_SAFE_LOAD=true) may not "
            "build: register it with cspdet.register_module, or allow it with torch.serialization.add_safe_globals"
        )
    return cls.__new__(cls)


@dataclass(frozen=True)
class Item:
    """One item of a model YAML's ``imports:`` list.

    Args:
        text (str): The item as written.
        module (str): The module name it is imported as.
        file (Path | None): The ``.py`` file of a path item, resolved inside the YAML's folder.
    """

    text: str
    module: str
    file: Path | None = None


def items(imports, yaml_file) -> list[Item]:
    """Check a model YAML's ``imports:`` value; return its items. Paths must stay inside the YAML's folder."""
    where = f"{yaml_file}: imports"
    if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
        raise BlockImportError(f"{where} must be a list of module names or .py files, got {imports!r}")
    folder = Path(yaml_file).resolve().parent
    found = []
    for text in imports:
        if not _is_path(text):
            if not all(part.isidentifier() for part in text.split(".")):
                raise BlockImportError(f"{where}: '{text}' is neither a module name nor a .py file")
            found.append(Item(text, text))
            continue
        path = Path(text)
        file = (folder / path).resolve()
        if path.is_absolute() or ".." in path.parts or not file.is_relative_to(folder):
            raise BlockImportError(
                f"{where}: '{text}' leaves the YAML's folder {folder}: give a path inside it, without '..', "
                "or a module name on sys.path"
            )
        if path.suffix != ".py" or not path.stem.isidentifier():
            raise BlockImportError(f"{where}: '{text}' must be a .py file whose name is a Python module name")
        if not file.is_file():
            raise BlockImportError(f"{where}: '{text}' is not a file ({file} not found)")
        found.append(Item(text, path.stem, file))
    return found


def _nowhere(yaml_file, item: Item, folder: Path) -> BlockImportError:
    return BlockImportError(f"{yaml_file}: imports: '{item.text}' is neither on sys.path nor in {folder}")


def find_yaml_imports(yaml_file):
    """Check that every item of the model YAML ``yaml_file``'s ``imports:`` can be found, importing none of them (a
    check before long work, e.g. before torchrun starts every process)."""
    import yaml

    with open(yaml_file, encoding="utf-8") as f:
        d = yaml.safe_load(f)
    if not isinstance(d, dict) or d.get("imports") is None:
        return
    folder = Path(yaml_file).resolve().parent
    for item in items(d["imports"], yaml_file):
        top = item.module.split(".")[0]
        if item.file is None and importlib.util.find_spec(top) is None:
            with _on_path(folder):
                if importlib.util.find_spec(top) is None:
                    raise _nowhere(yaml_file, item, folder)


def import_items(imports, yaml_file):
    """Import every item of a model YAML's ``imports:`` (see ``items``), before its rows are parsed.

    Raises:
        BlockImportError: One line naming the YAML, the item and why.
    """
    folder = Path(yaml_file).resolve().parent
    for item in items(imports, yaml_file):
        where = f"{yaml_file}: imports: '{item.text}'"
        try:
            if item.file is not None:
                module = _import_file(item.module, item.file)
            else:
                module = _import_name(item.module, folder)
                if module is None:
                    raise _nowhere(yaml_file, item, folder)
        except BlockImportError as e:
            raise e if str(e).startswith(where) else BlockImportError(f"{where}: {e}") from None
        except Exception as e:
            raise BlockImportError(f"{where}: importing it failed: {type(e).__name__}: {e}") from e
        remember(module, by_path=item.file is not None)


@functools.cache
def _entry_points() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def load_entry_point(name: str) -> str | None:
    """Import what an installed package declares for the block ``name`` (entry point group ``cspdet.modules``).

    Returns:
        (str | None): The entry point, as ``'name = value'``, or None when no package declares ``name``.
    """
    ep = _entry_points().get(name)
    if ep is None:
        return None
    declared = f"{ep.name} = {ep.value}" + (f" (package {ep.dist.name})" if ep.dist else "")
    try:
        loaded = ep.load()
    except Exception as e:
        raise BlockImportError(f"entry point {declared}: importing it failed: {type(e).__name__}: {e}") from e
    remember(sys.modules[loaded.__module__] if isinstance(loaded, type) else loaded)
    return declared
