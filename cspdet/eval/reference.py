"""The reference scorer: pycocotools' COCOeval on box predictions, for tests, the fuzzer and ``cspdet bench coco-eval``.

It reads what cspdet reads, with the same defaults (an annotation without ``iscrowd`` is not crowd, one without
``area`` takes its box's width x height) and no trust in annotation ids (COCOeval matches by them, so they are
renumbered 1..N); detections get the fields pycocotools' ``loadRes`` gives boxes (``area``, ``id``, ``iscrowd``).
pycocotools is an extra: ``pip install 'cspdet[bench]'``.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from cspdet.errors import CspdetError

EXTRA = "pip install 'cspdet[bench]'"


def require(module: str, what: str):
    """Import ``module`` (a package of the 'bench' extra) or raise a CspdetError that names the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise CspdetError(f"{what} needs {module.split('.')[0]}, which is not installed: {EXTRA}") from None


def pycocotools_scores(annotations: dict, predictions: list, image_ids=None) -> tuple[np.ndarray, dict]:
    """pycocotools' 12 numbers and per-category AP {category id: AP} (-1 where undefined).

    Args:
        annotations (dict): A COCO instances dict (as JSON parses it; not modified).
        predictions (list): COCO results: dicts with image_id, category_id, bbox, score (not modified).
        image_ids (list): Images to score; all if None.
    """
    coco = require("pycocotools.coco", "The reference scorer")
    cocoeval = require("pycocotools.cocoeval", "The reference scorer")
    gt_annotations = [
        {**a, "id": k, "iscrowd": a.get("iscrowd", 0), "area": a.get("area", a["bbox"][2] * a["bbox"][3])}
        for k, a in enumerate(annotations["annotations"], 1)
    ]
    detections = [
        {**p, "id": k, "area": p["bbox"][2] * p["bbox"][3], "iscrowd": 0} for k, p in enumerate(predictions, 1)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = coco.COCO(), coco.COCO()
        gt.dataset = {**annotations, "annotations": gt_annotations}
        dt.dataset = {
            "images": annotations["images"],
            "categories": annotations["categories"],
            "annotations": detections,
        }
        gt.createIndex()
        dt.createIndex()
        evaluator = cocoeval.COCOeval(gt, dt, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # IoU x recall x category, area 'all', 100 detections
    per_class = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k]
        per_class[category_id] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return np.array(evaluator.stats[:12]), per_class
