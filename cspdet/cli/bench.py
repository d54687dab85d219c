"""Run one of cspdet's benchmarks and print its tables.

    cspdet bench BENCHMARK [options]

Timings are interleaved (each round times every candidate once, in a shuffled or rotating order), so that a noisy,
shared machine slows all candidates alike; tables give medians and ratios. In a checkout, `python -m tools.bench
BENCHMARK [options]` runs the same and writes the tables, with the command, commit and date, into
docs/benchmarks.md. Exit status 1 when a benchmark's checks of its own outputs fail.
"""

from __future__ import annotations

from cspdet.cli import add_commands

BENCHMARKS = {  # name -> module of cspdet.cli with a docstring, add_arguments(parser) and reports(args)
    "model": "bench_model",
    "coco-eval": "bench_coco_eval",
    "coco-ingest": "bench_coco_ingest",
    "startup": "bench_startup",
    "ddp": "bench_ddp",
    "video": "bench_video",
}


def add_benchmarks(subparsers, benchmarks: dict[str, str]):
    """Add a parser per benchmark module (name -> module of cspdet.cli), with its ``reports`` as ``_reports``."""
    add_commands(subparsers, benchmarks, "_reports", function="reports")


def add_arguments(parser):
    add_benchmarks(parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK"), BENCHMARKS)


def show(reports: list) -> int:
    """Print each report; return 1 when one's checks failed."""
    for report in reports:
        print(f"## {report.title}\n\n{report.markdown()}\n")
    return 0 if all(r.ok for r in reports) else 1


def run(args) -> int:
    return show(args._reports(args))
