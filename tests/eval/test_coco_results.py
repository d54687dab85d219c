"""CocoResults: a detector's per-file detections scored with the annotation file's own image and category ids."""

import json

import numpy as np
import pytest
from helpers.coco_cases import write_coco_dataset

from cspdet.eval import METRIC_KEYS, CocoFormatError
from cspdet.eval.results import CocoResults


@pytest.fixture(scope="module")
def val_split(tmp_path_factory):
    """(annotation JSON, its content, image folder, image files) of the generated val split."""
    root = tmp_path_factory.mktemp("coco")
    write_coco_dataset(root)
    json_file, image_dir = root / "annotations" / "instances_val.json", root / "images" / "val"
    coco = json.loads(json_file.read_text())
    return json_file, coco, image_dir, [str(image_dir / im["file_name"]) for im in coco["images"]]


def ground_truth_detections(coco: dict, image_id: int):
    """An image's non-crowd ground truth as detections: xyxy boxes, scores 1 and class indices (sorted ids)."""
    objects = [a for a in coco["annotations"] if a["image_id"] == image_id and not a["iscrowd"]]
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in objects)], np.float32)
    return boxes, np.ones(len(objects), np.float32), np.array([[3, 11].index(a["category_id"]) for a in objects])


def test_ground_truth_fed_back_scores_one(val_split, tmp_path):
    json_file, coco, image_dir, files = val_split
    results = CocoResults(json_file, image_dir, files)
    for file, image in zip(files, coco["images"], strict=True):
        results.add(file, *ground_truth_detections(coco, image["id"]))
    metrics = results.score(tmp_path)
    assert [metrics[k] for k in METRIC_KEYS if metrics[k] != -1] == [1.0] * 8  # no medium or large objects
    assert json.loads((tmp_path / "coco_metrics.json").read_text()) == metrics
    written = json.loads((tmp_path / "predictions.json").read_text())
    expected = [a for a in coco["annotations"] if not a["iscrowd"]]
    assert [(p["image_id"], p["category_id"], p["bbox"], p["score"]) for p in written] == [
        (a["image_id"], a["category_id"], a["bbox"], 1.0) for a in expected
    ]


def test_keeps_the_100_best_detections_per_image(val_split, tmp_path):
    json_file, _, image_dir, files = val_split
    results = CocoResults(json_file, image_dir, files[:1])
    scores = np.random.default_rng(0).random(150).astype(np.float32)
    boxes = np.tile(np.array([[1, 2, 11, 22]], np.float32), (150, 1))
    results.add(files[0], boxes, scores, np.arange(150) % 2)
    predictions = results.predictions()
    assert len(predictions) == 100
    assert sorted(p["score"] for p in predictions) == sorted(
        np.round(np.sort(scores)[-100:].astype(np.float64), 5).tolist()
    )
    assert predictions[0]["bbox"] == [1, 2, 10, 20]


def test_scores_only_the_images_read(val_split, tmp_path):
    json_file, coco, image_dir, files = val_split
    results = CocoResults(json_file, image_dir, files[1:2])
    results.add(files[1], *ground_truth_detections(coco, coco["images"][1]["id"]))
    metrics = results.score(tmp_path)
    assert metrics["AP"] == pytest.approx(1.0) and [c["instances"] for c in metrics["per_class"]] == [1, 1]


def test_image_missing_from_the_json_is_an_error(val_split):
    json_file, _, image_dir, files = val_split
    with pytest.raises(CocoFormatError, match=f"{json_file}: no image has file_name 'more/extra.png'"):
        CocoResults(json_file, image_dir, [*files, str(image_dir / "more" / "extra.png")])
