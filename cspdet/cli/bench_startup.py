"""Start-up cost of cspdet's auto-load hook: what `import _cspdet_hook` (run by cspdet.pth) adds to every Python.

Runs `python -X importtime -c pass` repeatedly and reports the hook's cumulative import time next to the whole
start-up's wall time (target: under 5 ms added).

    cspdet bench startup [--runs 50]
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--runs", type=int, default=50)


def reports(args) -> list:
    from cspdet.research.startup_bench import startup_report

    return [startup_report(args.runs)]
