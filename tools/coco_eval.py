"""Score a COCO results file against a COCO annotation file with the official COCO box metrics (faster-coco-eval).

    python tools/coco_eval.py --annotations instances_val.json --predictions predictions.json [--out metrics.json]

Prints the 12 standard numbers and the per-class AP; ``--out`` writes them as JSON (the coco_metrics.json format).
A malformed file, or a prediction for an image or category that the annotations lack, is an error (exit status 2).
"""

from __future__ import annotations

import argparse

from cspdet.eval import CocoFormatError, metrics_table, save_json, score_files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True, help="COCO annotation JSON (ground truth)")
    parser.add_argument(
        "--predictions", required=True, help="COCO results JSON: [{image_id, category_id, bbox, score}]"
    )
    parser.add_argument("--out", help="write the metrics to this JSON file")
    args = parser.parse_args(argv)
    try:
        metrics = score_files(args.annotations, args.predictions)
    except CocoFormatError as e:
        parser.exit(2, f"coco_eval: error: {e}\n")
    print(f"COCO box metrics of {args.predictions} against {args.annotations}\n{metrics_table(metrics)}")
    if args.out:
        print(f"Saved {save_json(metrics, args.out)}")


if __name__ == "__main__":
    main()
