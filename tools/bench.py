"""Run a benchmark as ``cspdet bench`` does and write its tables into docs/benchmarks.md (maintainers, in a checkout).

    python -m tools.bench BENCHMARK [options] [--doc docs/benchmarks.md]

BENCHMARK is one of ``cspdet bench``'s (same options), or ``gpu-check``. Each section is stamped with this command,
the checkout's commit and the date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cspdet.cli.bench import BENCHMARKS, add_benchmarks, show
from tools.benchdoc import REPO, command_line, update_section


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md", help="markdown file to update")
    add_benchmarks(parser.add_subparsers(dest="benchmark", required=True), {**BENCHMARKS, "gpu-check": "gpu_check"})
    args = parser.parse_args(argv)
    reports = args._reports(args)
    status = show(reports)
    for report in reports:
        update_section(args.doc, report.section, report.title, report.markdown(), command_line("tools.bench"))
    print(f"Wrote {', '.join(r.section for r in reports)} into {args.doc}")
    return status


if __name__ == "__main__":
    sys.exit(main())
