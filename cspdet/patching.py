"""Replacing attributes of other modules, and the record of what was replaced (``cspdet info`` lists it).

A leaf: it imports nothing of cspdet, so that every seam of ``cspdet.integration`` can use it.
"""

from __future__ import annotations

import contextlib
import functools
import sys

PATCHED: list[str] = []  # what has been patched in this process, as 'module.attribute' names


def _owner_name(owner) -> str:
    return owner.__name__ if isinstance(owner, type(sys)) else f"{owner.__module__}.{owner.__qualname__}"


def patch(owner, name: str, value):
    """Set ``owner.name`` to ``value`` for the rest of the process, and record it in ``PATCHED``."""
    setattr(owner, name, value)
    PATCHED.append(f"{_owner_name(owner)}.{name}")


def wrap(owner, name: str, replacement):
    """Replace ``owner.name`` (a function or method) by one that calls ``replacement(original, *args, **kwargs)``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        return replacement(original, *args, **kwargs)

    wrapped.cspdet = True
    patch(owner, name, wrapped)


def wrap_everywhere(module, name: str, replacement):
    """Wrap the function ``module.name`` as ``wrap`` does, and in every ultralytics module that imported it."""
    original = getattr(module, name)
    wrap(module, name, replacement)
    for other in [m for n, m in sys.modules.items() if n.startswith("ultralytics")]:
        if other is not module and getattr(other, name, None) is original:
            setattr(other, name, getattr(module, name))


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
