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


def run(args, doc) -> int:
    import os
    import statistics

    from ultralytics.utils import TQDM

    from cspdet.research.benchdoc import markdown_table, update_section
    from cspdet.research.coco_bench import INGESTERS, measure, train2017_like

    folder = args.dir / f"{args.images}-{args.boxes}"  # convert_coco converts every JSON of the folder
    json_file = folder / "instances_train2017.json"
    if not json_file.is_file():
        train2017_like(json_file, args.images, args.boxes)
    modes = [m for m in INGESTERS if not (m == "convert_coco" and args.no_convert_coco)]
    runs = {m: [] for m in modes}
    for _, mode in TQDM([(r, m) for r in range(args.rounds) for m in modes], desc="ingesting"):
        runs[mode].append(measure("ingest", mode, str(json_file)))
    median = {m: {k: statistics.median(x[k] for x in v) for k in ("seconds", "peak_gib")} for m, v in runs.items()}
    label = {
        "cold": "cspdet, no cache (parse + labels)",
        "warm": "cspdet, cache hit (labels)",
        "convert_coco": "ultralytics convert_coco (to .txt)",
    }
    rows = [
        [label[m], f"{median[m]['seconds']:.1f}", ", ".join(f"{x['seconds']:.1f}" for x in runs[m]),
         f"{median[m]['peak_gib']:.2f}",
         f"{median['convert_coco']['seconds'] / median[m]['seconds']:.1f}x" if "convert_coco" in median else "-"]
        for m in modes
    ]  # fmt: skip
    body = (
        f"Synthetic instances JSON shaped like COCO train2017: {args.images:,} images, {args.boxes:,} annotations "
        f"({json_file.stat().st_size / 1e6:.0f} MB, polygon segmentations, 1% crowd RLE), {args.rounds} interleaved "
        f"rounds, each run in a fresh process on {os.cpu_count()} CPUs (shared machine). Peak RSS is the whole "
        f"process, imports included; {runs['cold'][0]['produced']:,} training boxes (crowd skipped, clipped, no-area "
        "dropped). Target: under 15 s and 2 GB for the no-cache row.\n\n"
        + markdown_table(["", "median s", "runs s", "peak RSS GiB", "speed-up vs convert_coco"], rows)
    )
    print(body)
    if doc:
        update_section(doc, "coco-ingest", "COCO JSON ingestion (train2017-sized)", body)
    return 0
