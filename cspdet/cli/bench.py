"""Run one of cspdet's benchmarks and write its table, with this command, into a markdown file.

    cspdet bench BENCHMARK [options] [--doc docs/benchmarks.md]

Timings are interleaved (each round times every candidate once, in a shuffled or rotating order), so that a noisy,
shared machine slows all candidates alike; tables give medians and ratios. Without --doc, the table goes into
docs/benchmarks.md when the current folder has one (a cspdet checkout), and is printed in any case.
"""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = {  # name -> module of cspdet.cli with a docstring, add_arguments(parser) and run(args, doc)
    "model": "bench_model",
    "coco-eval": "bench_coco_eval",
    "coco-ingest": "bench_coco_ingest",
    "startup": "bench_startup",
    "ddp": "bench_ddp",
    "video": "bench_video",
}
DEFAULT_DOC = Path("docs/benchmarks.md")


def add_arguments(parser):
    from cspdet.cli import add_commands

    benchmarks = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for bench in add_commands(benchmarks, BENCHMARKS, "_bench"):
        bench.add_argument("--doc", type=Path, help="markdown file for the table (default: docs/benchmarks.md if any)")


def run(args) -> int:
    doc = args.doc or (DEFAULT_DOC if DEFAULT_DOC.is_file() else None)
    return args._bench(args, doc)
