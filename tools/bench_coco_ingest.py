"""Benchmark: a COCO train2017-sized instances JSON parsed and turned into training labels, against convert_coco.

Generates (once) a synthetic JSON shaped like instances_train2017.json (118,287 images, 860,001 annotations with
polygon segmentations and 1% crowd RLE regions, 80 categories with COCO's non-contiguous ids, about 430 MB), then runs,
interleaved, each in a fresh process: cspdet cold (no cache: parse, check, clip, group, one label dict per image),
cspdet warm (content-keyed cache hit) and ultralytics' convert_coco (writes YOLO .txt labels, before ultralytics' own
label scan). Reports median seconds and peak RSS of the process (imports included), and writes them to
docs/benchmarks.md.

    python tools/bench_coco_ingest.py                 # full size, 3 rounds
    python tools/bench_coco_ingest.py --images 2000 --boxes 15000 --rounds 1 --no-doc   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

COCO_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]  # COCO's 80 ids


def make_json(path: Path, images: int, boxes: int, seed: int = 0):
    """Write a synthetic COCO instances JSON with the structure and field sizes of instances_train2017.json."""
    from ultralytics.utils import TQDM

    rng = np.random.default_rng(seed)
    ids = rng.choice(600_000, images, replace=False) + 1
    widths, heights = rng.choice([640, 480, 500, 427], images), rng.choice([480, 640, 375, 333], images)
    owner = rng.integers(0, images, boxes)
    crowd = rng.random(boxes) < 0.011
    category = rng.choice(COCO_IDS, boxes)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write('{"info": {"description": "synthetic COCO train2017-sized"}, "licenses": [], "images": [')
        f.write(",".join(
            f'{{"license": 1, "file_name": "{i:012d}.jpg", "coco_url": "http://images.cocodataset.org/train2017/'
            f'{i:012d}.jpg", "height": {h}, "width": {w}, "date_captured": "2013-11-14 11:18:45", "flickr_url": '
            f'"http://farm4.staticflickr.com/1/{i}.jpg", "id": {i}}}' for i, w, h in zip(ids, widths, heights)
        ))  # fmt: skip
        f.write('], "annotations": [')
        for k in TQDM(range(boxes), desc="Generating annotations"):
            w, h = widths[owner[k]], heights[owner[k]]
            bw, bh = rng.uniform(2, w / 2), rng.uniform(2, h / 2)
            x, y = rng.uniform(-5, w - bw + 5), rng.uniform(-5, h - bh + 5)  # some cross the border
            if crowd[k]:
                seg = f'{{"counts": [{",".join(map(str, rng.integers(1, 400, 60)))}], "size": [{h}, {w}]}}'
            else:
                n = int(rng.integers(8, 40))
                xy = np.stack([x + rng.uniform(0, bw, n), y + rng.uniform(0, bh, n)], 1).round(2).ravel()
                seg = f"[[{','.join(map(str, xy.tolist()))}]]"
            f.write(f'{"," if k else ""}{{"segmentation": {seg}, "area": {bw * bh:.4f}, "iscrowd": {int(crowd[k])}, '
                    f'"image_id": {ids[owner[k]]}, "bbox": [{x:.2f},{y:.2f},{bw:.2f},{bh:.2f}], "category_id": '
                    f"{category[k]}, \"id\": {k + 1}}}")  # fmt: skip
        categories = [{"supercategory": "thing", "id": i, "name": f"class{i}"} for i in COCO_IDS]
        f.write(f'], "categories": {json.dumps(categories)}}}')
    os.replace(tmp, path)


def child(mode: str, json_file: Path) -> dict:
    """Run one measurement in this (fresh) process; return seconds, peak RSS and what was produced."""
    from cspdet.data.coco import cache_path, load_coco

    if mode == "cold":
        cache_path(json_file).unlink(missing_ok=True)
    start = time.perf_counter()
    if mode == "convert_coco":
        from ultralytics.data.converter import convert_coco

        with tempfile.TemporaryDirectory(dir=json_file.parent) as tmp:
            convert_coco(labels_dir=str(json_file.parent), save_dir=f"{tmp}/out", cls91to80=False)
            seconds = time.perf_counter() - start
            produced = sum(1 for _ in Path(tmp).rglob("*.txt"))
    else:
        index = load_coco(json_file)
        labels = []
        for i, (file, shape) in enumerate(zip(index.files.tolist(), index.sizes.tolist(), strict=True)):
            cls, boxes = index.labels(i)
            labels.append({"im_file": file, "shape": tuple(shape), "cls": cls, "bboxes": boxes, "segments": [],
                           "keypoints": None, "normalized": True, "bbox_format": "xywh"})  # fmt: skip
        seconds = time.perf_counter() - start
        produced = sum(len(lb["cls"]) for lb in labels)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"seconds": seconds, "peak_gib": peak, "produced": produced}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=118_287)
    parser.add_argument("--boxes", type=int, default=860_001)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "cspdet-bench-coco")
    parser.add_argument("--no-convert-coco", action="store_true", help="skip ultralytics' convert_coco")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return

    folder = args.dir / f"{args.images}-{args.boxes}"  # convert_coco converts every JSON of the folder
    json_file = folder / "instances_train2017.json"
    if not json_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        make_json(json_file, args.images, args.boxes)
    modes = ["cold", "warm"] + ([] if args.no_convert_coco else ["convert_coco"])
    runs = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in modes:
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(json_file)], capture_output=True,
                                 text=True, check=True, env={**os.environ, "YOLO_OFFLINE": "1"})  # fmt: skip
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {mode}: {runs[mode][-1]}")
    median = {m: {k: statistics.median(x[k] for x in v) for k in ("seconds", "peak_gib")} for m, v in runs.items()}
    size = json_file.stat().st_size / 1e6
    from benchdoc import markdown_table

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
    table = markdown_table(["", "median s", "runs s", "peak RSS GiB", "speed-up vs convert_coco"], rows)
    body = (
        f"Synthetic instances JSON shaped like COCO train2017: {args.images:,} images, {args.boxes:,} annotations "
        f"({size:.0f} MB, polygon segmentations, 1% crowd RLE), {args.rounds} interleaved rounds, each run in a fresh "
        f"process on {os.cpu_count()} CPUs (shared machine). Peak RSS is the whole process, imports included; "
        f"{runs['cold'][0]['produced']:,} training boxes (crowd skipped, clipped, no-area dropped). Target: under "
        f"15 s and 2 GB for the no-cache row.\n\n{table}"
    )
    print(body)
    if not args.no_doc:
        from benchdoc import update_section

        update_section("coco-ingest", "COCO JSON ingestion (train2017-sized)", body)


if __name__ == "__main__":
    main()
