"""Signature matching with ultralytics' own modules, so that cspdet's stages follow the installed release."""

from __future__ import annotations

import inspect


def parameters(function) -> list[inspect.Parameter]:
    """The parameters of ``function`` in order (``self`` first for a method)."""
    return list(inspect.signature(function).parameters.values())


def upstream_arguments(cls: type, upstream: type, skip: int, values: dict, where: str) -> list:
    """Order ``values`` (arguments of ``cls``, a subclass of ``upstream``) as the installed ``upstream`` takes them.

    Parameters are matched by name after the first ``skip`` (``self, c1, c2[, n]``), so that cspdet's stages follow
    upstream's signature in every release (8.3's C3k2 has no ``attn``). A value for a parameter that the installed
    upstream class lacks must be ``cls``'s default; otherwise this raises, naming it.
    """
    theirs = [p.name for p in parameters(upstream.__init__)[skip:]]
    defaults = {p.name: p.default for p in parameters(cls.__init__)}
    values, ordered = dict(values), []
    for name in theirs:
        if name not in values:
            break  # the rest keep upstream's defaults
        ordered.append(values.pop(name))
    for name, value in values.items():
        if value != defaults[name]:
            import ultralytics

            raise ValueError(
                f"{where}: {name}={value!r} needs an ultralytics whose {upstream.__name__} takes '{name}' (installed: "
                f"ultralytics {ultralytics.__version__}, {upstream.__name__}{tuple(theirs)})"
            )
    return ordered
