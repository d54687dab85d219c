"""A detector's predictions on the images of a COCO annotation file, with the file's own image and category ids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ultralytics.utils import LOGGER

from cspdet.data.coco_format import CocoFormatError
from cspdet.eval.coco import MAX_DETECTIONS, evaluate, load_annotations, save_json


class CocoResults:
    """Collect per-image detections of a split and score them against its COCO annotation file.

    Class k is the k-th category sorted by id; an image is the one whose ``file_name`` is its path relative to the
    split's image folder.

    Args:
        annotations (str | Path): COCO annotation JSON of the split.
        image_dir (str | Path): The split's image folder.
        image_files (list[str]): The images that will be predicted (all or part of the annotation file's).
    """

    def __init__(self, annotations: str | Path, image_dir: str | Path, image_files: list[str]):
        self.annotations = str(annotations)
        self.gt = load_annotations(annotations)
        names = dict(zip(self.gt.files, self.gt.image_ids.tolist()))  # file names normalised
        self.image_ids = {}
        for file in image_files:
            name = Path(os.path.relpath(file, image_dir)).as_posix()
            if name not in names:
                raise CocoFormatError(f"{annotations}: no image has file_name '{name}' (the image {file})")
            self.image_ids[file] = names[name]
        if len(self.image_ids) < len(names):
            LOGGER.warning(f"{annotations}: scoring the {len(self.image_ids)} of its {len(names)} images that are read")
        self.category_ids = np.sort(self.gt.category_ids)
        self.detections = []

    def add(self, image_file: str, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray):
        """Record an image's detections (xyxy pixel boxes in the original image), keeping the 100 best."""
        best = np.argsort(-scores, kind="stable")[:MAX_DETECTIONS]
        image_id = np.full(len(best), self.image_ids[image_file])
        boxes, scores = boxes[best].astype(np.float64), scores[best].astype(np.float64)  # float32 would round badly
        self.detections.append((image_id, boxes, scores, classes[best].astype(int)))

    def predictions(self) -> list[dict]:
        """The recorded detections in the COCO results format (boxes to 3 decimals and scores to 5, as ultralytics)."""
        image_ids, boxes, scores, classes = (np.concatenate(x) for x in zip(*self.detections, strict=True))
        boxes[:, 2:] -= boxes[:, :2]
        return [
            {"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(
                image_ids.tolist(),
                self.category_ids[classes].tolist(),
                np.round(boxes, 3).tolist(),
                np.round(scores, 5).tolist(),
                strict=True,
            )
        ]

    def score(self, save_dir: str | Path | None = None) -> dict:
        """Score the detections (see ``evaluate``); with ``save_dir``, write predictions.json and coco_metrics.json."""
        predictions = self.predictions() if self.detections else []
        if save_dir is not None:
            save_json(predictions, Path(save_dir) / "predictions.json")
        metrics = evaluate(self.gt, predictions, image_ids=self.image_ids.values(), name="predictions.json")
        if save_dir is not None:
            save_json(metrics, Path(save_dir) / "coco_metrics.json")
        return metrics
