"""COCO benchmarks: generated COCO-format files, and one scoring or ingestion measured in a fresh process.

``python -m cspdet.research.coco_bench score METHOD ANNOTATIONS PREDICTIONS`` and ``... ingest MODE JSON`` run one
measurement and print it as JSON (``profile-score ANNOTATIONS PREDICTIONS`` and ``profile-ingest JSON``: cspdet's run
under cProfile); ``cspdet bench coco-eval`` and ``cspdet bench coco-ingest`` run them interleaved.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cspdet.research.report import Report, Table

SCORERS = ("pycocotools", "faster-coco-eval", "cspdet.eval")
INGESTERS = ("cold", "warm", "convert_coco")  # cspdet without cache, with a cache hit, ultralytics' convert_coco
COCO_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]  # COCO's 80 ids


def synthetic_coco(images: int = 5000, boxes: int = 36000, detections: int = 100, seed: int = 0) -> tuple[dict, list]:
    """Return a COCO annotation dict and a COCO results list shaped like a detector's output on COCO val2017.

    Ground truth: 80 categories with non-contiguous ids in 1..90, sizes spanning the small/medium/large ranges with
    some boxes exactly at the 32² and 96² borders, and 1% crowd regions. Detections: ``detections`` per image, a third
    of them jittered copies of that image's ground truth (mostly the right category), the rest random boxes.

    Args:
        images (int): Number of images.
        boxes (int): Number of ground-truth boxes, spread over random images.
        detections (int): Detections per image.
        seed (int): Random seed.
    """
    rng = np.random.default_rng(seed)
    category_ids = np.sort(rng.choice(np.arange(1, 91), 80, replace=False))
    image_ids = np.sort(rng.choice(10 * images, images, replace=False)) + 1
    widths, heights = rng.integers(320, 641, images), rng.integers(240, 481, images)

    owner = np.sort(rng.integers(0, images, boxes))
    wh = np.exp(rng.uniform(np.log(4), np.log(300), (boxes, 2)))
    wh[rng.random(boxes) < 0.02] = 32.0  # area exactly 32², the small/medium border
    wh[rng.random(boxes) < 0.02] = 96.0  # area exactly 96², the medium/large border
    wh = np.minimum(wh, np.stack([widths[owner], heights[owner]], 1))
    xy = rng.random((boxes, 2)) * (np.stack([widths[owner], heights[owner]], 1) - wh)
    gt_boxes = np.round(np.concatenate([xy, wh], 1), 2)
    gt_cats = rng.choice(category_ids, boxes)
    crowd = (rng.random(boxes) < 0.01).astype(int)
    annotation = {
        "images": [
            {"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h}
            for i, w, h in zip(image_ids.tolist(), widths.tolist(), heights.tolist(), strict=True)
        ],
        "annotations": [
            {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": z}
            for k, (i, c, b, z) in enumerate(
                zip(image_ids[owner].tolist(), gt_cats.tolist(), gt_boxes.tolist(), crowd.tolist(), strict=True)
            )
        ],
        "categories": [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in category_ids.tolist()],
    }

    n = images * detections
    det_image = np.repeat(np.arange(images), detections)
    counts = np.bincount(owner, minlength=images)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    copies = (rng.random(n) < 1 / 3) & (counts[det_image] > 0)
    source = starts[det_image] + (rng.random(n) * counts[det_image]).astype(int)
    source = np.minimum(source, boxes - 1)
    size = np.stack([widths[det_image], heights[det_image]], 1)
    rand_wh = np.exp(rng.uniform(np.log(4), np.log(300), (n, 2))).clip(max=size)
    det_boxes = np.concatenate([rng.random((n, 2)) * (size - rand_wh), rand_wh], 1)
    jitter = np.concatenate(
        [
            gt_boxes[source, :2] + rng.normal(0, 0.08, (n, 2)) * gt_boxes[source, 2:],
            gt_boxes[source, 2:] * np.exp(rng.normal(0, 0.1, (n, 2))),
        ],
        1,
    )
    det_boxes[copies] = jitter[copies]
    det_cats = np.where(copies & (rng.random(n) < 0.9), gt_cats[source], rng.choice(category_ids, n))
    scores = np.where(copies, rng.beta(5, 2, n), rng.beta(2, 5, n))
    results = [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(
            image_ids[det_image].tolist(),
            det_cats.tolist(),
            np.round(det_boxes, 3).tolist(),
            np.round(scores, 5).tolist(),
            strict=True,
        )
    ]
    return annotation, results


def train2017_like(path: Path, images: int = 118_287, boxes: int = 860_001, seed: int = 0):
    """Write a synthetic COCO instances JSON with the structure and field sizes of instances_train2017.json."""
    from ultralytics.utils import TQDM

    rng = np.random.default_rng(seed)
    ids = rng.choice(600_000, images, replace=False) + 1
    widths, heights = rng.choice([640, 480, 500, 427], images), rng.choice([480, 640, 375, 333], images)
    owner = rng.integers(0, images, boxes)
    crowd = rng.random(boxes) < 0.011
    category = rng.choice(COCO_IDS, boxes)
    from cspdet.files import atomic_write

    with atomic_write(path) as f:
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


def score(method: str, annotations: str, predictions: str) -> tuple[float, list[float]]:
    """Score the files with ``method``, loading them included (imports not); return (seconds, the 12 numbers)."""
    from faster_coco_eval import COCO, COCOeval_faster
    from pycocotools import cocoeval  # noqa: F401  (imported before the clock starts, as the others)

    from cspdet.eval.coco import METRIC_KEYS, score_files
    from cspdet.eval.reference import pycocotools_scores

    start = time.perf_counter()
    if method == "cspdet.eval":
        metrics = score_files(annotations, predictions)
        return time.perf_counter() - start, [metrics[k] for k in METRIC_KEYS]
    if method == "pycocotools":
        with open(annotations, "rb") as a, open(predictions, "rb") as p:
            stats, _ = pycocotools_scores(json.load(a), json.load(p))
        return time.perf_counter() - start, stats.tolist()
    with contextlib.redirect_stdout(io.StringIO()):  # as ultralytics' DetectionValidator.coco_evaluate calls it
        gt = COCO(annotations)
        evaluator = COCOeval_faster(gt, gt.loadRes(predictions), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return time.perf_counter() - start, [float(x) for x in evaluator.stats[:12]]


def ingest(mode: str, json_file: Path) -> dict:
    """Ingest ``json_file`` as ``mode`` (INGESTERS) in this fresh process; return seconds, peak RSS and output size."""
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


def profile(call, *args, top: int = 8) -> list[list]:
    """Run ``call(*args)`` under cProfile (CPU time); return its ``top`` functions by own time: [name, s, share]."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(call, *args)
    stats = pstats.Stats(profiler).stats  # {(file, line, function): (calls, primitive calls, own, cumulative, callers)}
    total = sum(own for _, _, own, _, _ in stats.values())
    rows = sorted(((own, key) for key, (_, _, own, _, _) in stats.items()), reverse=True)[:top]
    return [[_function(key), f"{own:.2f}", f"{own / total:.0%}"] for own, key in rows] + [["all", f"{total:.2f}", ""]]


def _function(key: tuple) -> str:
    file, line, name = key
    if file == "~":  # a builtin: "<method 'decode' of 'msgspec.json.Decoder' objects>"
        return f"`{name.strip('<>{}')}`"
    parts = Path(file).parts
    where = "/".join(parts[parts.index("cspdet") :]) if "cspdet" in parts else Path(file).name
    return f"`{where}:{line}({name})`"


def measure(*args: str) -> dict:
    """Run ``score``, ``ingest`` or their ``profile`` with ``args`` in a fresh Python process; return what it
    printed."""
    import subprocess

    env = {**os.environ, "YOLO_OFFLINE": "1"}
    command = [sys.executable, "-m", "cspdet.research.coco_bench", *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def ingest_report(images: int, boxes: int, rounds: int, folder: Path, convert_coco: bool = True) -> Report:
    """Ingestion of a train2017-sized JSON (generated once under ``folder``), each run in a fresh process,
    interleaved: cspdet without cache, with a cache hit, and ultralytics' convert_coco."""
    import statistics

    from ultralytics.utils import TQDM

    folder = folder / f"{images}-{boxes}"  # convert_coco converts every JSON of the folder
    json_file = folder / "instances_train2017.json"
    if not json_file.is_file():
        train2017_like(json_file, images, boxes)
    modes = [m for m in INGESTERS if convert_coco or m != "convert_coco"]
    runs = {m: [] for m in modes}
    for _, mode in TQDM([(r, m) for r in range(rounds) for m in modes], desc="ingesting"):
        runs[mode].append(measure("ingest", mode, str(json_file)))
    hot = measure("profile-ingest", str(json_file))
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
    text = (
        f"Synthetic instances JSON shaped like COCO train2017: {images:,} images, {boxes:,} annotations "
        f"({json_file.stat().st_size / 1e6:.0f} MB, polygon segmentations, 1% crowd RLE), {rounds} interleaved "
        f"rounds, each run in a fresh process on {os.cpu_count()} CPUs (shared machine). Peak RSS is the whole "
        f"process, imports included; {runs['cold'][0]['produced']:,} training boxes (crowd skipped, clipped, no-area "
        "dropped). The no-cache row hashes the file (the cache key), reads and checks it (cspdet.data.coco_format: "
        "typed msgspec records that skip `segmentation`, decoded a piece at a time), clips and groups the boxes, "
        "writes the cache and builds one label dict per image. Targets: the no-cache row at least 15x convert_coco "
        "and at most 1.0 GiB, the cache hit at most 1.5 s. Where the no-cache row's time goes: cProfile of one more "
        "run, CPU seconds of each function's own time."
    )
    cold, warm = median["cold"], median["warm"]
    verdict = [
        f"cache hit {warm['seconds']:.1f} s ({_met(warm['seconds'] <= 1.5)})",
        f"no cache {cold['peak_gib']:.2f} GiB ({_met(cold['peak_gib'] <= 1.0)})",
    ]
    if "convert_coco" in median:
        speedup = median["convert_coco"]["seconds"] / cold["seconds"]
        verdict.insert(0, f"no cache {speedup:.1f}x convert_coco ({_met(speedup >= 15)})")
    lead = cold["seconds"] - warm["seconds"]
    text += (
        f" Measured: {', '.join(verdict)}. The cache stays while the no-cache run takes more than a second longer "
        f"than a cache hit; here it takes {lead:.1f} s longer, so "
        + ("the cache stays." if lead > 1 else "removing the cache is worth weighing.")
    )
    header = ["", "median s", "runs s", "peak RSS GiB", "speed-up vs convert_coco"]
    tables = [Table(header, rows), Table(["function (no cache)", "CPU s", "share"], hot)]
    return Report("coco-ingest", "COCO JSON ingestion (train2017-sized)", text, tables)


def eval_report(images: int, boxes: int, detections: int, rounds: int) -> Report:
    """Scoring of generated val2017-sized files by each of ``SCORERS``, each run in a fresh process, interleaved."""
    import statistics

    from ultralytics.utils import TQDM

    from cspdet.eval.coco import save_json
    from cspdet.eval.reference import require

    require("pycocotools", "cspdet bench coco-eval")  # faster-coco-eval is a dependency of cspdet

    with tempfile.TemporaryDirectory() as tmp:
        files = [str(Path(tmp) / "annotations.json"), str(Path(tmp) / "predictions.json")]
        for data, file in zip(synthetic_coco(images, boxes, detections), files, strict=True):
            save_json(data, file)
        times, stats, load = {m: [] for m in SCORERS}, {}, [os.getloadavg()[0]]
        order = [SCORERS[(r + i) % len(SCORERS)] for r in range(rounds) for i in range(len(SCORERS))]
        for method in TQDM(order, desc="scoring"):
            result = measure("score", method, *files)
            times[method].append(result["seconds"])
            stats[method] = result["stats"]
        load.append(os.getloadavg()[0])
        hot = measure("profile-score", *files)

    median, best = ({m: f(t) for m, t in times.items()} for f in (statistics.median, min))
    rows = [
        [
            m,
            f"{median[m]:.2f}",
            f"{best[m]:.2f}",
            ", ".join(f"{t:.1f}" for t in times[m]),
            f"{median['pycocotools'] / median[m]:.1f}x",
            f"{best['pycocotools'] / best[m]:.1f}x",
            ", ".join(f"{a / b:.1f}x" for a, b in zip(times["pycocotools"], times[m], strict=True)),
            f"{np.abs(np.subtract(stats[m], stats['pycocotools'])).max():.1e}",
        ]
        for m in SCORERS
    ]
    header = ["scorer", "median s", "best s", "runs s", "speed-up: medians", "best runs", "each round", "max abs diff"]
    text = (
        f"Generated COCO-format files: {images} images, {boxes} ground-truth boxes (1% crowd), {detections} "
        f"detections per image ({images * detections} in all), 80 categories with non-contiguous ids. Each run loads "
        "both files from disk, evaluates, accumulates and summarizes in a fresh process; "
        f"{rounds} rounds, interleaved, on {os.cpu_count()} CPUs with a load average of {load[0]:.1f} at the start "
        f"and {load[1]:.1f} at the end. faster-coco-eval is called as ultralytics calls it (`COCO`, `loadRes`, "
        "`COCOeval_faster`); pycocotools as the tests' reference scorer (`cspdet.eval.reference`); cspdet.eval "
        "(`score_files`) reads both files with cspdet's COCO reader and its checks and runs COCOeval's algorithm on "
        "whole arrays (cspdet/eval/coco.py). Max abs diff: the largest difference of the 12 numbers from "
        "pycocotools'. Target: cspdet.eval at least 1.8x faster-coco-eval at a max abs diff of 0. Where cspdet.eval's "
        "time goes: cProfile of one more run, CPU seconds of each function's own time."
    )
    speedup = median["faster-coco-eval"] / median["cspdet.eval"]
    diff = np.abs(np.subtract(stats["cspdet.eval"], stats["pycocotools"])).max()
    text += (
        f" Measured: cspdet.eval {speedup:.2f}x faster-coco-eval ({_met(speedup >= 1.8)}), max abs diff {diff:.1e} "
        f"({_met(diff == 0)})."
    )
    tables = [Table(header, rows), Table(["function (cspdet.eval)", "CPU s", "share"], hot)]
    return Report("coco-eval", "COCO box scoring: pycocotools vs faster-coco-eval vs cspdet.eval", text, tables)


def _met(ok: bool) -> str:
    return "target met" if ok else "target missed"


if __name__ == "__main__":
    what, *rest = sys.argv[1:]
    if what == "score":
        seconds, stats = score(*rest)
        print(json.dumps({"seconds": seconds, "stats": stats}))
    elif what == "ingest":
        print(json.dumps(ingest(rest[0], Path(rest[1]))))
    elif what == "profile-score":
        print(json.dumps(profile(score, "cspdet.eval", *rest)))
    else:  # profile-ingest
        print(json.dumps(profile(ingest, "cold", Path(rest[0]))))
