"""cspdet's version (also in pyproject.toml): a leaf that every module may import without loading anything else."""

__version__ = "0.1.0"
