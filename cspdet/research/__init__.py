"""Research and benchmark code behind ``cspdet ablate`` and ``cspdet bench``: experiments, timings, their reports."""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)
