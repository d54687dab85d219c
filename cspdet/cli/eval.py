"""Score a COCO results file against a COCO annotation file with the official COCO box metrics.

    cspdet eval --annotations instances_val.json --predictions predictions.json [--out metrics.json]

Prints the 12 standard numbers (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl) and the per-class
AP; --out writes them as JSON (the coco_metrics.json format). A malformed file, or a prediction for an image or
category that the annotations lack, is an error naming the file and the field.
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--annotations", required=True, help="COCO annotation JSON (ground truth)")
    parser.add_argument("--predictions", required=True, help="COCO results: [{image_id, category_id, bbox, score}]")
    parser.add_argument("--out", help="write the metrics to this JSON file")


def run(args) -> int:
    from cspdet.eval import metrics_table, save_json, score_files

    metrics = score_files(args.annotations, args.predictions)
    print(f"COCO box metrics of {args.predictions} against {args.annotations}\n{metrics_table(metrics)}")
    if args.out:
        print(f"Saved {save_json(metrics, args.out)}")
    return 0
