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


def reports(args) -> list:
    from cspdet.research.coco_bench import eval_report

    return [eval_report(args.images, args.boxes, args.detections, args.rounds)]
