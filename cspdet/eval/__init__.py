"""Official COCO box metrics for any COCO-format annotation file: COCOeval's algorithm on whole arrays, with the
numbers of pycocotools (``cspdet.eval.reference``, an extra) to the last bit."""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.data.coco_format import CocoFormatError
from cspdet.eval.coco import (
    MAX_DETECTIONS,
    METRIC_KEYS,
    evaluate,
    load_annotations,
    metrics_table,
    read_json,
    save_json,
    score_files,
)

__all__ = [
    "MAX_DETECTIONS",
    "METRIC_KEYS",
    "CocoFormatError",
    "evaluate",
    "load_annotations",
    "score_files",
    "metrics_table",
    "read_json",
    "save_json",
]
