"""Start-up cost of cspdet's auto-load hook: what `import _cspdet_hook` (run by cspdet.pth) adds to every Python.

Runs `python -X importtime -c pass` repeatedly and reports the hook's cumulative import time next to the whole
start-up's wall time (the target is under 5 ms added).
"""

import argparse
import re
import statistics
import subprocess
import sys
import time

from benchdoc import markdown_table, update_section


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    hook_us, wall_ms = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True
        ).stderr
        wall_ms.append((time.perf_counter() - start) * 1e3)
        match = re.search(r"import time:\s+\d+ \|\s+(\d+) \|\s+_cspdet_hook$", stderr, re.M)
        if not match:
            raise SystemExit("cspdet.pth is not installed: _cspdet_hook was not imported at start-up")
        hook_us.append(int(match[1]))
    rows = [
        ["`import _cspdet_hook` (cumulative)", f"{statistics.median(hook_us) / 1e3:.3f}", f"{max(hook_us) / 1e3:.3f}"],
        ["`python -X importtime -c pass`, whole", f"{statistics.median(wall_ms):.1f}", f"{max(wall_ms):.1f}"],
    ]
    update_section(
        "startup",
        "Start-up cost of the auto-load hook",
        f"{args.runs} runs; the hook's time is what cspdet adds to every Python process that never imports "
        "ultralytics (target: under 5 ms).\n\n" + markdown_table(["what", "median ms", "max ms"], rows),
    )


if __name__ == "__main__":
    main()
