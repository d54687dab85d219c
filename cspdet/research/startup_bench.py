"""What cspdet's start-up hook (``cspdet.pth`` -> ``import _cspdet_hook``) adds to every Python process."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time

from ultralytics.utils import TQDM

from cspdet.research.report import Report, Table


def hook_import_times(runs: int) -> tuple[list[float], list[float]]:
    """Run ``python -X importtime -c pass`` ``runs`` times; return the hook's cumulative import times and the whole
    start-up's wall times, both in milliseconds."""
    hook_ms, wall_ms = [], []
    for _ in TQDM(range(runs), desc="start-ups"):
        start = time.perf_counter()
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True
        ).stderr
        wall_ms.append((time.perf_counter() - start) * 1e3)
        match = re.search(r"import time:\s+\d+ \|\s+(\d+) \|\s+_cspdet_hook$", stderr, re.M)
        if not match:
            raise RuntimeError(
                f"{sys.executable}: cspdet.pth is not installed, _cspdet_hook was not imported at start-up"
            )
        hook_ms.append(int(match[1]) / 1e3)
    return hook_ms, wall_ms


def startup_report(runs: int) -> Report:
    """The hook's cumulative import time next to the whole start-up's wall time (target: under 5 ms added)."""
    hook_ms, wall_ms = hook_import_times(runs)
    rows = [
        ["`import _cspdet_hook` (cumulative)", f"{statistics.median(hook_ms):.3f}", f"{max(hook_ms):.3f}"],
        ["`python -X importtime -c pass`, whole", f"{statistics.median(wall_ms):.1f}", f"{max(wall_ms):.1f}"],
    ]
    text = (
        f"{runs} runs; the hook's time is what cspdet adds to every Python process that never imports ultralytics "
        "(target: under 5 ms)."
    )
    table = Table(["what", "median ms", "max ms"], rows)
    return Report("startup", "Start-up cost of the auto-load hook", text, [table])
