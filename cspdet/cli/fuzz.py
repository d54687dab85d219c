"""Fuzz COCO instances JSON: mutants of a valid file must train and score, or fail before training naming the field.

    cspdet fuzz [--mutants 2000] [--seed 0] [--score-only] [--json FILE --images DIR] [--out DIR] [--doc FILE]

Each mutant (keys removed, wrong types, NaN/inf/negative/huge numbers, boxes outside the image or of the wrong
length, duplicate and unknown ids, empty or missing sections, non-ASCII names, invalid JSON, extra keys, file names
outside the image folder, ...) is parsed for training and for scoring, scored against pycocotools, and (without
--score-only) trained for one step with the ultralytics trainer and scored in its final validation. The table of
outcomes per mutation kind is printed and, with --doc (default: docs/robustness.md when it exists), written there.
Exit status 1 when any mutant fails otherwise than with one error naming the file and the field.

Examples:
    cspdet fuzz --mutants 300 --score-only
    cspdet fuzz --mutants 2000 --doc docs/robustness.md
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_DOC = Path("docs/robustness.md")


def add_arguments(parser):
    parser.add_argument("--mutants", type=int, default=2000, help="number of mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    parser.add_argument("--score-only", action="store_true", help="parse and score only, do not train")
    parser.add_argument("--json", type=Path, help="valid COCO instances JSON to mutate (default: generated shapes)")
    parser.add_argument("--images", type=Path, help="its image folder (with --json)")
    parser.add_argument("--out", type=Path, default=Path("runs/fuzz"), help="working folder (emptied)")
    parser.add_argument("--doc", type=Path, help="markdown file for the table (default: docs/robustness.md if any)")


def run(args) -> int:
    from cspdet.research.benchdoc import update_section
    from cspdet.research.fuzz import fuzz_tables, run_fuzz, seed_dataset

    if (args.json is None) != (args.images is None):
        raise ValueError("--json and --images go together: the mutants of a file are trained on its images")
    json_file, images = args.json, args.images
    if json_file is None:
        json_file = seed_dataset(args.out.with_name(f"{args.out.name}-seed"))
        images = json_file.parent / "images"
    report = run_fuzz(json_file, images, args.mutants, args.seed, train=not args.score_only, folder=args.out)
    text = fuzz_tables(report)
    print(text)
    doc = args.doc or (DEFAULT_DOC if DEFAULT_DOC.is_file() else None)
    if doc:
        print(f"Saved {update_section(doc, 'fuzz-coco', 'COCO JSON mutants', text)}")
    findings = report.findings()
    if findings:
        print(f"cspdet fuzz: {len(findings)} of {len(report.outcomes)} mutants failed otherwise than by a named error")
    return 1 if findings else 0
