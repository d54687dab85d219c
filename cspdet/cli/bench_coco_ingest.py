"""COCO JSON ingestion at train2017 size: cspdet's parser against ultralytics' convert_coco.

Generates (once, under --dir) a synthetic JSON shaped like instances_train2017.json (118,287 images, 860,001
annotations with polygon segmentations and 1% crowd RLE regions, 80 categories with COCO's non-contiguous ids, about
430 MB), then runs, interleaved, each in a fresh process: cspdet cold (no cache: parse, check, clip, group, one label
dict per image), cspdet warm (content-keyed cache hit) and ultralytics' convert_coco (writes YOLO .txt labels, before
ultralytics' own label scan). Reports median seconds and the peak RSS of the process (imports included).

    cspdet bench coco-ingest                                             # full size, 3 rounds
    cspdet bench coco-ingest --images 2000 --boxes 15000 --rounds 1      # quick check
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def add_arguments(parser):
    parser.add_argument("--images", type=int, default=118_287)
    parser.add_argument("--boxes", type=int, default=860_001)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "cspdet-bench-coco")
    parser.add_argument("--no-convert-coco", action="store_true", help="skip ultralytics' convert_coco")


def reports(args) -> list:
    from cspdet.research.coco_bench import ingest_report

    return [ingest_report(args.images, args.boxes, args.rounds, args.dir, convert_coco=not args.no_convert_coco)]
