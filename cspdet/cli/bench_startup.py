"""Start-up cost of cspdet's auto-load hook: what `import _cspdet_hook` (run by cspdet.pth) adds to every Python.

Runs `python -X importtime -c pass` repeatedly and reports the hook's cumulative import time next to the whole
start-up's wall time (target: under 5 ms added).

    cspdet bench startup [--runs 50]
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--runs", type=int, default=50)


def run(args, doc) -> int:
    import statistics

    from cspdet.research.benchdoc import markdown_table, update_section
    from cspdet.research.startup import hook_import_times

    hook_ms, wall_ms = hook_import_times(args.runs)
    rows = [
        ["`import _cspdet_hook` (cumulative)", f"{statistics.median(hook_ms):.3f}", f"{max(hook_ms):.3f}"],
        ["`python -X importtime -c pass`, whole", f"{statistics.median(wall_ms):.1f}", f"{max(wall_ms):.1f}"],
    ]
    body = (
        f"{args.runs} runs; the hook's time is what cspdet adds to every Python process that never imports "
        "ultralytics (target: under 5 ms).\n\n" + markdown_table(["what", "median ms", "max ms"], rows)
    )
    print(body)
    if doc:
        update_section(doc, "startup", "Start-up cost of the auto-load hook", body)
    return 0
