"""Benchmark COCO box scoring at COCO val2017 scale: pycocotools vs faster-coco-eval vs cspdet.eval, side by side.

Each run scores generated files from disk (both files loaded, evaluate, accumulate, summarize) in a fresh process, so
imports are not timed and no run inherits another's memory. Runs are interleaved in rotating order; the table gives
medians and best runs, the speed-up over pycocotools (ratio of medians, of best runs, and within each round) and the
largest difference of the 12 numbers from pycocotools'.

    python tools/bench_coco_eval.py                  # 5000 images, 36000 boxes, 100 detections/image, 3 rounds
    python tools/bench_coco_eval.py --images 500 --boxes 3600 --rounds 1 --no-doc
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHODS = ("pycocotools", "faster-coco-eval", "cspdet.eval")


def score(method: str, annotations: str, predictions: str) -> tuple[float, list[float]]:
    """Score the files with ``method``; return (seconds, the 12 numbers)."""
    if method == "cspdet.eval":
        from cspdet.eval import METRIC_KEYS, score_files

        start = time.perf_counter()
        metrics = score_files(annotations, predictions)
        return time.perf_counter() - start, [metrics[k] for k in METRIC_KEYS]
    if method == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:  # as ultralytics' DetectionValidator.coco_evaluate calls it
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        gt = COCO(annotations)
        evaluator = COCOeval(gt, gt.loadRes(predictions), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        seconds = time.perf_counter() - start
    return seconds, [float(x) for x in evaluator.stats[:12]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=36000)
    parser.add_argument("--detections", type=int, default=100, help="detections per image")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each method, interleaved")
    parser.add_argument("--no-doc", action="store_true", help="print only, leave docs/benchmarks.md alone")
    parser.add_argument("--run", nargs=3, metavar=("METHOD", "ANNOTATIONS", "PREDICTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(score(*args.run)))
        return

    from benchdoc import markdown_table, update_section
    from ultralytics.utils import TQDM

    from cspdet.eval import save_json
    from cspdet.eval.synthetic import synthetic_coco

    with tempfile.TemporaryDirectory() as tmp:
        files = [str(Path(tmp) / "annotations.json"), str(Path(tmp) / "predictions.json")]
        for data, file in zip(synthetic_coco(args.images, args.boxes, args.detections), files, strict=True):
            save_json(data, file)
        times, stats, load = {m: [] for m in METHODS}, {}, [os.getloadavg()[0]]
        order = [METHODS[(r + i) % len(METHODS)] for r in range(args.rounds) for i in range(len(METHODS))]
        for method in TQDM(order, desc="scoring"):
            run = [sys.executable, __file__, "--run", method, *files]
            seconds, stats[method] = json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
            times[method].append(seconds)
        load.append(os.getloadavg()[0])

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
        for m in METHODS
    ]
    header = ["scorer", "median s", "best s", "runs s", "speed-up: medians", "best runs", "each round", "max abs diff"]
    table = markdown_table(header, rows)
    body = (
        f"Generated COCO-format files: {args.images} images, {args.boxes} ground-truth boxes (1% crowd), "
        f"{args.detections} detections per image ({args.images * args.detections} in all), 80 categories with "
        "non-contiguous ids. Each run loads both files from disk, evaluates, accumulates and summarizes in a fresh "
        f"process; {args.rounds} rounds, interleaved, on {os.cpu_count()} CPUs with a load average of {load[0]:.1f} "
        f"at the start and {load[1]:.1f} at the end. faster-coco-eval is called as ultralytics calls it (`COCO`, "
        "`loadRes`, `COCOeval_faster`); cspdet.eval (`score_files`) adds its file checks and feeds the same "
        "evaluator more cheaply (see cspdet/eval/coco.py). Max abs diff: the largest difference of the 12 numbers "
        "from pycocotools'.\n\n" + table
    )
    print(body)
    if not args.no_doc:
        update_section("coco-eval", "COCO box scoring: pycocotools vs faster-coco-eval vs cspdet.eval", body)


if __name__ == "__main__":
    main()
