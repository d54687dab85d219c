"""cspdet's blocks by name: the module that defines each, and how a model YAML row of it is parsed.

A leaf read by ``cspdet/__init__`` (the lazy exports), ``cspdet.nn`` (its exports) and the registry (which makes the
rows usable in model YAMLs and every block loadable from checkpoints).
"""

from __future__ import annotations

from typing import NamedTuple


class Block(NamedTuple):
    """Where a block lives, and the upstream module whose YAML parsing its rows get (None: a part of other blocks)."""

    module: str
    like: str | None


BLOCKS = {
    "ResidualBlock": Block("cspdet.nn.blocks", "Conv"),
    "WeightedResidualBlock": Block("cspdet.nn.blocks", "Conv"),
    "CSPBlock": Block("cspdet.nn.stages", "C3"),
    "C3WRC": Block("cspdet.nn.stages", "C3"),
    "C2fWRC": Block("cspdet.nn.stages", "C2f"),
    "C3k2WRC": Block("cspdet.nn.stages", "C3k2"),
    # parts: no rows of their own, but inside every checkpoint of the blocks above
    "C3kWRC": Block("cspdet.nn.stages", None),
    "WRCBottleneck": Block("cspdet.nn.blocks", None),
    "WeightedShortcut": Block("cspdet.nn.wrc", None),
}
ROWS = [name for name, block in BLOCKS.items() if block.like]  # the names usable in YAML rows
