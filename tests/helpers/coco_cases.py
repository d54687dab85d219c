"""COCO scoring test cases: hand-made edge cases, generated data, a tiny COCO-format dataset on disk."""

import json
from pathlib import Path

import cv2
import numpy as np

from cspdet.research.coco_bench import synthetic_coco


def _box(x, y, w, h):
    return [float(x), float(y), float(w), float(h)]


def edge_case() -> tuple[dict, list]:
    """Crowd regions with detections on them, boxes at the 32² and 96² borders, non-contiguous category ids (one
    without ground truth, one without detections), images without detections and an image without ground truth."""
    images = [{"id": i, "file_name": f"img{i}.jpg", "width": 640, "height": 480} for i in (3, 8, 15, 42, 99)]
    gt = [  # image, category, box, crowd
        (3, 7, _box(10, 10, 32, 32), 0),  # area exactly 32²
        (3, 7, _box(100, 100, 96, 96), 0),  # area exactly 96²
        (3, 21, _box(300, 50, 31.5, 32), 0),
        (3, 21, _box(200, 200, 150, 120), 1),  # crowd: detections inside it are ignored, not false positives
        (8, 21, _box(20, 30, 60, 40), 0),
        (8, 7, _box(400, 300, 97, 96), 0),
        (15, 7, _box(50, 60, 20, 25), 0),  # image 15 gets no detections
        (15, 90, _box(5, 5, 120, 100), 0),  # category 90 gets no detections
        (42, 21, _box(0, 0, 640, 480), 1),  # crowd only
    ]
    annotations = [
        {"id": k + 10, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": z}
        for k, (i, c, b, z) in enumerate(gt)
    ]
    categories = [{"id": c, "name": n} for c, n in ((7, "cat"), (21, "dog"), (55, "unseen"), (90, "rare"))]
    predictions = [  # image, category, box, score
        (3, 7, _box(11, 10, 32, 32), 0.9),
        (3, 7, _box(10, 10, 32, 32), 0.4),  # duplicate: a false positive
        (3, 7, _box(102, 98, 96, 96), 0.8),
        (3, 7, _box(100, 100, 95.9, 96), 0.3),
        (3, 21, _box(300, 50, 32, 32), 0.7),
        (3, 21, _box(210, 210, 40, 40), 0.95),  # inside the crowd region
        (3, 21, _box(220, 230, 64, 32), 0.6),  # inside the crowd region
        (3, 21, _box(500, 400, 32, 32), 0.5),  # false positive at the 32² border
        (8, 21, _box(22, 31, 58, 40), 0.85),
        (8, 7, _box(398, 299, 96, 96), 0.65),
        (8, 7, _box(0, 0, 96, 96.01), 0.2),
        (8, 55, _box(10, 10, 50, 50), 0.75),  # category without ground truth
        (42, 21, _box(100, 100, 100, 100), 0.99),  # on the crowd-only image
        (99, 7, _box(1, 1, 10, 10), 0.55),  # image without ground truth
    ]
    results = [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in predictions]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def one_per_class(n_images: int = 30, seed: int = 0) -> dict:
    """Annotations with at most one box per image and category (sizes across all ranges) plus crowd regions."""
    rng = np.random.default_rng(seed)
    annotations = []
    for i in range(1, n_images + 1):
        for c in rng.choice([2, 5, 11, 17], rng.integers(1, 4), replace=False).tolist():
            w, h = (float(v) for v in np.exp(rng.uniform(np.log(8), np.log(200), 2)))
            box = _box(rng.uniform(0, 400), rng.uniform(0, 250), w, h)
            annotations.append({"image_id": i, "category_id": c, "bbox": box, "area": w * h, "iscrowd": 0})
        annotations.append({"image_id": i, "category_id": 2, "bbox": _box(0, 0, 300, 200), "area": 6e4, "iscrowd": 1})
    for k, a in enumerate(annotations, 1):
        a["id"] = k
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(1, n_images + 1)]
    categories = [{"id": c, "name": f"c{c}"} for c in (2, 5, 11, 17)]
    return {"images": images, "annotations": annotations, "categories": categories}


CATEGORIES = [{"id": 11, "name": "blue"}, {"id": 3, "name": "red"}]  # class 0 is id 3 (red), class 1 is id 11
COLORS = {3: (0, 0, 255), 11: (255, 0, 0)}


def write_coco_dataset(root: Path, n_train: int = 8, n_val: int = 4, height: int = 64) -> Path:
    """Write a tiny COCO-format dataset (rectangles, non-contiguous category ids, crowd regions, images of different
    widths, some in a subfolder); return its data YAML, which takes the class names from the JSON."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split / "more").mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for k in range(count):
            image_id, file_name = 500 + 7 * k, f"more/{k:03d}.png" if k % 2 else f"{k:03d}.png"
            width = height + 8 * k
            image = np.full((height, width, 3), 114, np.uint8)
            for category_id, color in COLORS.items():
                w, h = (int(v) for v in rng.integers(height // 5, height // 2, 2))
                x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
                cv2.rectangle(image, (x, y), (x + w, y + h), color, -1)
                box = [x, y, w, h]
                annotations.append({"image_id": image_id, "category_id": category_id, "bbox": box, "area": w * h})
            if k % 3 == 0:  # a crowd region: to be ignored by the evaluator, never a training target
                box = [0, 0, width // 2, height // 2]
                annotations.append(
                    {"image_id": image_id, "category_id": 3, "bbox": box, "area": box[2] * box[3], "iscrowd": 1}
                )
            cv2.imwrite(str(root / "images" / split / file_name), image)
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for k, a in enumerate(annotations, 1):
            a.setdefault("iscrowd", 0)
            a["id"] = k
        (root / "annotations").mkdir(exist_ok=True)
        coco = {"images": images, "annotations": annotations, "categories": CATEGORIES}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\n"
        "annotations:\n  train: annotations/instances_train.json\n  val: annotations/instances_val.json\n"
    )
    return data


CASES = {"edge-case": edge_case, "synthetic": lambda: synthetic_coco(images=150, boxes=1100, detections=100, seed=3)}
