"""Run the compatibility matrix: the compat tests on each ultralytics release, each in an environment of its own.

    python -m tools.compat [RELEASE ...] [--envs DIR] [--doc docs/compat.md] [--resume]

RELEASE is an ultralytics version, or 'newest' (the newest release in cspdet's range); the default is 10 releases
from 8.3.0 to the newest. It runs the tests of this checkout (installed editable in each environment, with its dev
extras) and builds the environments with uv (in the dev extra). Each release's environment and pytest log stay in
--envs; docs/compat.json keeps every result, and the matrix and features sections of docs/compat.md are rewritten
after each release. --resume skips releases already run at the checkout's current commit.

    python -m tools.compat                        # the whole matrix (about 5 minutes a release on 2 CPU cores)
    python -m tools.compat 8.3.0 newest --resume  # the oldest and the newest release
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tools.benchdoc import REPO, command_line
from tools.compat import RELEASES, run_matrix

DEFAULT_ENVS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cspdet" / "compat"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.compat", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("releases", nargs="*", metavar="RELEASE", help="ultralytics versions, or 'newest'")
    parser.add_argument(
        "--envs", type=Path, default=DEFAULT_ENVS, help=f"environments folder (default: {DEFAULT_ENVS})"
    )
    parser.add_argument("--doc", type=Path, help="markdown file to update (default: docs/compat.md of the checkout)")
    parser.add_argument("--resume", action="store_true", help="skip releases already run at the current commit")
    args = parser.parse_args(argv)
    doc = args.doc or REPO / "docs" / "compat.md"
    results = run_matrix(args.releases or RELEASES, args.envs, doc, args.resume, command_line("tools.compat"))
    failed = sorted(v for v, r in results.items() if r["failed"] or any(
        c["outcome"] == "failed" for c in r["checks"].values()))  # fmt: skip
    print(f"{doc}: {len(results)} releases, failures on: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
