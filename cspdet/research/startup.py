"""What cspdet's start-up hook (``cspdet.pth`` -> ``import _cspdet_hook``) adds to every Python process."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from ultralytics.utils import TQDM


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
