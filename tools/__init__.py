"""Maintainer tools of a cspdet checkout, not shipped in the wheel: run them from the checkout's root as
``python -m tools.NAME`` (compat, fuzz, bench)."""
