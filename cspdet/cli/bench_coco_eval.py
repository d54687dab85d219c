"""COCO box scoring at COCO val2017 scale: pycocotools against faster-coco-eval against cspdet.eval.

Each run scores generated files from disk (both files loaded, evaluate, accumulate, summarize) in a fresh process,
so imports are not timed and no run inherits another's memory. Runs are interleaved in rotating order; the table
gives medians and best runs, the speed-up over pycocotools (ratio of medians, of best runs, and within each round)
and the largest difference of the 12 numbers from pycocotools'.

    cspdet bench coco-eval                                          # 5000 images, 36000 boxes, 100 detections/image
    cspdet bench coco-eval --images 500 --boxes 3600 --rounds 1     # quick check
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=36000)
    parser.add_argument("--detections", type=int, default=100, help="detections per image")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each scorer, interleaved")


def run(args, doc) -> int:
    import os
    import statistics
    import tempfile
    from pathlib import Path

    import numpy as np
    from ultralytics.utils import TQDM

    from cspdet.eval.coco import save_json
    from cspdet.research.benchdoc import markdown_table, update_section
    from cspdet.research.coco_bench import SCORERS, measure, synthetic_coco

    with tempfile.TemporaryDirectory() as tmp:
        files = [str(Path(tmp) / "annotations.json"), str(Path(tmp) / "predictions.json")]
        for data, file in zip(synthetic_coco(args.images, args.boxes, args.detections), files, strict=True):
            save_json(data, file)
        times, stats, load = {m: [] for m in SCORERS}, {}, [os.getloadavg()[0]]
        order = [SCORERS[(r + i) % len(SCORERS)] for r in range(args.rounds) for i in range(len(SCORERS))]
        for method in TQDM(order, desc="scoring"):
            result = measure("score", method, *files)
            times[method].append(result["seconds"])
            stats[method] = result["stats"]
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
        for m in SCORERS
    ]
    header = ["scorer", "median s", "best s", "runs s", "speed-up: medians", "best runs", "each round", "max abs diff"]
    body = (
        f"Generated COCO-format files: {args.images} images, {args.boxes} ground-truth boxes (1% crowd), "
        f"{args.detections} detections per image ({args.images * args.detections} in all), 80 categories with "
        "non-contiguous ids. Each run loads both files from disk, evaluates, accumulates and summarizes in a fresh "
        f"process; {args.rounds} rounds, interleaved, on {os.cpu_count()} CPUs with a load average of {load[0]:.1f} "
        f"at the start and {load[1]:.1f} at the end. faster-coco-eval is called as ultralytics calls it (`COCO`, "
        "`loadRes`, `COCOeval_faster`); cspdet.eval (`score_files`) adds its file checks and feeds the same "
        "evaluator more cheaply (see cspdet/eval/coco.py). Max abs diff: the largest difference of the 12 numbers "
        "from pycocotools'.\n\n" + markdown_table(header, rows)
    )
    print(body)
    if doc:
        update_section(doc, "coco-eval", "COCO box scoring: pycocotools vs faster-coco-eval vs cspdet.eval", body)
    return 0
