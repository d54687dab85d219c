"""The ablation and the benchmarks behind ``cspdet ablate`` and ``cspdet bench``: each benchmark is a function that
returns its tables (``report.Report``), printed by ``cspdet bench`` and written into docs by ``python -m
tools.bench``."""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)
