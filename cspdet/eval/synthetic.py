"""Generated COCO-format ground truth and detections for evaluator tests and benchmarks (no images)."""

from __future__ import annotations

import numpy as np


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
