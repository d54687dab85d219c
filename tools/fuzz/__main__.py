"""Fuzz COCO instances JSON: mutants of a valid file must train and score, or fail before training naming the field.

    python -m tools.fuzz [--mutants 2000] [--seed 0] [--score-only] [--json FILE --images DIR] [--out DIR]
                         [--doc FILE | --no-doc]

Each mutant (keys removed, wrong types, NaN/inf/negative/huge numbers, boxes outside the image or of the wrong
length, duplicate and unknown ids, empty or missing sections, non-ASCII names, invalid JSON, extra keys, file names
outside the image folder, ...) is parsed for training and for scoring, scored against pycocotools, and (without
--score-only) trained for one step with the ultralytics trainer and scored in its final validation. The table of
outcomes per mutation kind is printed and written into --doc (default: docs/robustness.md) unless --no-doc.
Exit status 1 when any mutant fails otherwise than with one error naming the file and the field.

Examples:
    python -m tools.fuzz --mutants 300 --score-only --no-doc
    python -m tools.fuzz --mutants 2000 --doc docs/robustness.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cspdet.cli import FAILURES
from tools.benchdoc import REPO, command_line, update_section
from tools.fuzz import run_fuzz
from tools.fuzz.mutations import seed_dataset
from tools.fuzz.report import fuzz_tables

DEFAULT_DOC = REPO / "docs" / "robustness.md"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mutants", type=int, default=2000, help="number of mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    parser.add_argument("--score-only", action="store_true", help="parse and score only, do not train")
    parser.add_argument("--json", type=Path, help="valid COCO instances JSON to mutate (default: generated shapes)")
    parser.add_argument("--images", type=Path, help="its image folder (with --json)")
    parser.add_argument("--out", type=Path, default=Path("runs/fuzz"), help="working folder (emptied)")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file for the table")
    parser.add_argument("--no-doc", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    if (args.json is None) != (args.images is None):
        parser.error("--json and --images go together: the mutants of a file are trained on its images")
    json_file, images = args.json, args.images
    if json_file is None:
        json_file = seed_dataset(args.out.with_name(f"{args.out.name}-seed"))
        images = json_file.parent / "images"
    try:
        report = run_fuzz(json_file, images, args.mutants, args.seed, train=not args.score_only, folder=args.out)
    except FAILURES as e:  # the seed file itself is unusable: one line, as the cspdet commands say it
        print(f"fuzz: error: {e}", file=sys.stderr)
        return 1
    text = fuzz_tables(report)
    print(text)
    if not args.no_doc:
        print(f"Saved {update_section(args.doc, 'fuzz-coco', 'COCO JSON mutants', text, command_line('tools.fuzz'))}")
    findings = report.findings()
    if findings:
        print(f"fuzz: {len(findings)} of {len(report.outcomes)} mutants failed otherwise than by a named error")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
