"""Official COCO box metrics for any COCO-format annotation file: COCOeval's algorithm, on whole arrays.

The numbers are pycocotools' ``COCOeval(iouType="bbox")``, bit for bit: the same IoU (crowd regions as ignore
regions), the same greedy matching per image, category, area range and IoU threshold (at most 100 detections per
image and category, highest score first), the same precision envelope read at 101 recall points, and the same
summary. What differs is the order of work: numpy runs each step over all images and categories at once (the
matching one detection rank at a time) instead of one (image, category) pair at a time. Tests compare the two on
edge cases, the fuzzer on every mutant it scores, and ``cspdet bench coco-eval`` at COCO val2017 scale.

Files are read by cspdet's COCO reader (``cspdet.data.coco_format``) and checked before scoring, so that a malformed
file fails with its name and the offending field, and a prediction for an image or category that the annotations
lack is reported instead of being dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ultralytics.utils import LOGGER

from cspdet.data.coco_format import (  # one reader and one set of rules for training and scoring
    FieldChecker,
    Instances,
    box_column,
    check_instances,
    column,
    gc_paused,
    positions,
    read_instances,
    read_json,
    read_predictions,
)
from cspdet.files import atomic_write

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
MAX_DETECTIONS = 100  # per image, as COCO's results format allows and its evaluator counts (per image and category)
# COCOeval's parameters for boxes
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0**2, 1e5**2), "small": (0**2, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e5**2)}
MAX_DETS = (1, 10, MAX_DETECTIONS)


@dataclass(frozen=True)
class Detections:
    """Checked box predictions, in file order.

    Args:
        images (np.ndarray): (k,) position of each detection's image in the annotations' ``image_ids``.
        categories (np.ndarray): (k,) position of its category in the annotations' ``category_ids``.
        boxes (np.ndarray): (k, 4) [x, y, width, height].
        scores (np.ndarray): (k,) confidence.
    """

    images: np.ndarray
    categories: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray


def save_json(obj, path: str | Path) -> Path:
    """Write ``obj`` as JSON to ``path``, whole or not at all."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj))
    return Path(path)


def load_annotations(source: str | Path | dict, name: str | None = None) -> Instances:
    """Read and check a COCO annotation file (or dict) for box evaluation, with the rules training applies.

    An annotation without ``area`` gets its box's width x height (also written into a dict ``source``).

    Args:
        source (str | Path | dict): Annotation JSON file, or its parsed content.
        name (str): Name of the annotations in messages; defaults to the file path ('annotations' for a dict).

    Returns:
        (Instances): The checked annotations; ``file`` is the name.
    """
    if not isinstance(source, dict):
        return read_instances(source, name)
    found = check_instances(source, name or "annotations")
    annotations = source["annotations"]
    for k in np.flatnonzero(found.no_area).tolist():
        annotations[k]["area"] = float(found.areas[k])
    return found


def check_predictions(predictions, gt: Instances, name: str) -> Detections:
    """Check a COCO results list against the annotations, field by field, naming the first bad record."""
    check = FieldChecker(name)
    if not isinstance(predictions, list):
        check.fail(f"must be a JSON list of detections (COCO results format), got {type(predictions).__name__}")
    check.objects(predictions, "predictions", "predictions")
    index = {}
    for field, ids, what in (("image_id", gt.image_ids, "images"), ("category_id", gt.category_ids, "categories")):
        values = check.ints("predictions", predictions, field)
        index[field] = check.known("predictions", predictions, field, values, ids, f"the {what} of {gt.file}")
    scores = check.numbers("predictions", predictions, "score", "a finite number", np.isfinite)
    return Detections(index["image_id"], index["category_id"], check.boxes("predictions", predictions), scores)


def read_detections(file: str | Path, gt: Instances) -> Detections:
    """Read and check a COCO results file against the annotations (typed records when they pass, else the checks
    field by field, which name the first bad record)."""
    records = read_predictions(file)
    if records is not None:
        images, known_images = positions(column(records, "image_id"), gt.image_ids)
        categories, known_categories = positions(column(records, "category_id"), gt.category_ids)
        if known_images.all() and known_categories.all():
            return Detections(images, categories, box_column(records), column(records, "score", np.float64))
    return check_predictions(read_json(file), gt, str(file))


def score_files(annotations: str | Path, predictions: str | Path) -> dict:
    """Score a COCO results file against a COCO annotation file; see ``evaluate``."""
    with gc_paused():
        gt = load_annotations(annotations)
        return score(gt, read_detections(predictions, gt), name=str(predictions))


def evaluate(gt: Instances, predictions: list, image_ids=None, name: str = "predictions") -> dict:
    """Check box predictions and score them: the 12 standard numbers and the per-class AP.

    Args:
        gt (Instances): Annotations from ``load_annotations``; crowd regions count as ignore regions.
        predictions (list): COCO results (dicts with image_id, category_id, bbox [x, y, w, h], score).
        image_ids (list): Images to score; all images of ``gt`` if None.
        name (str): Name of the predictions for messages, e.g. their file.

    Returns:
        (dict): AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl (-1 where undefined, as in COCO), and
            ``per_class``: one dict per category (id, name, instances, AP, AP50).
    """
    return score(gt, check_predictions(predictions, gt, name), image_ids, name)


def score(gt: Instances, detections: Detections, image_ids=None, name: str = "predictions") -> dict:
    """Score checked detections; see ``evaluate``."""
    per_image = np.bincount(detections.images, minlength=len(gt.image_ids))
    crowded = int((per_image > MAX_DETECTIONS).sum())
    if crowded:
        LOGGER.warning(
            f"{name}: {crowded} images have more than {MAX_DETECTIONS} detections; COCO's results format allows "
            f"{MAX_DETECTIONS} per image, and its evaluator keeps the {MAX_DETECTIONS} best per image and category"
        )
    scored = np.ones(len(gt.image_ids), bool) if image_ids is None else np.isin(gt.image_ids, list(image_ids))
    precision, recall = _accumulate(gt, detections, scored)
    metrics = dict(zip(METRIC_KEYS, _summarize(precision, recall), strict=True))

    category_order = np.argsort(gt.category_ids, kind="stable")
    instances = np.bincount(gt.categories[scored[gt.images] & ~gt.crowd], minlength=len(gt.category_ids))
    metrics["per_class"] = []
    for k, c in enumerate(category_order.tolist()):
        p = precision[:, :, k, 0, -1]  # IoU x recall, area 'all', 100 detections
        metrics["per_class"].append(
            {
                "id": int(gt.category_ids[c]),
                "name": str(gt.names[c]),
                "instances": int(instances[c]),
                "AP": float(p[p > -1].mean()) if (p > -1).any() else -1.0,
                "AP50": float(p[0][p[0] > -1].mean()) if (p[0] > -1).any() else -1.0,
            }
        )
    return metrics


def box_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of detection boxes ``d`` and ground-truth boxes ``g`` (pairs, [x, y, w, h]) with COCO's formula: for a
    crowd region, the union is the detection's own area. Same operations in the same order as pycocotools' C code."""
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter, det_area = w * h, d[:, 2] * d[:, 3]
    union = np.where(crowd, det_area, det_area + g[:, 2] * g[:, 3] - inter)
    overlap = (w > 0) & (h > 0)
    return np.divide(inter, union, out=np.zeros_like(inter), where=overlap)


def _groups(image_rank: np.ndarray, category_rank: np.ndarray, n_categories: int, *order) -> tuple:
    """Sort records by (image, category, *order); return the sort and each record's group and rank in its group."""
    key = image_rank * n_categories + category_rank
    sort = np.lexsort((*order[::-1], key)) if order else np.argsort(key, kind="stable")
    key = key[sort]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, len(key)])
    rank = np.arange(len(key)) - np.repeat(starts, counts)
    return sort, key, starts, counts, rank


def _accumulate(gt: Instances, dt: Detections, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's evaluate and accumulate: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where undefined."""
    n_categories = len(gt.category_ids)
    image_rank = np.full(len(gt.image_ids), -1)
    image_rank[np.flatnonzero(scored)[np.argsort(gt.image_ids[scored], kind="stable")]] = np.arange(scored.sum())
    category_rank = np.empty(n_categories, np.int64)
    category_rank[np.argsort(gt.category_ids, kind="stable")] = np.arange(n_categories)

    # Ground truth of the scored images, by (image, category), in file order
    g = np.flatnonzero(scored[gt.images])
    sort, g_key, *_ = _groups(image_rank[gt.images[g]], category_rank[gt.categories[g]], n_categories)
    g = g[sort]
    g_boxes, g_areas, g_crowd = gt.boxes[g], gt.areas[g], gt.crowd[g]
    g_category = category_rank[gt.categories[g]]

    # Detections by (image, category), highest score first (ties in file order), the 100 best of each
    d = np.flatnonzero(scored[dt.images])
    sort, d_key, _, _, d_rank = _groups(
        image_rank[dt.images[d]], category_rank[dt.categories[d]], n_categories, -dt.scores[d]
    )
    d = d[sort]
    best = d_rank < MAX_DETS[-1]
    d, d_key, d_rank = d[best], d_key[best], d_rank[best]
    d_boxes, d_scores = dt.boxes[d], dt.scores[d]
    d_areas = d_boxes[:, 2] * d_boxes[:, 3]

    # Candidate pairs: a detection and a ground truth of its image and category with an IoU of at least 0.5
    groups, d_start, g_start = np.intersect1d(d_key, g_key, assume_unique=False, return_indices=True)[0:3]
    d_count = np.searchsorted(d_key, groups, side="right") - d_start
    g_count = np.searchsorted(g_key, groups, side="right") - g_start
    sizes = d_count * g_count
    pair_group = np.repeat(np.arange(len(groups)), sizes)
    offset = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pair_d = d_start[pair_group] + offset // g_count[pair_group]
    pair_g = g_start[pair_group] + offset % g_count[pair_group]
    iou = box_iou(d_boxes[pair_d], g_boxes[pair_g], g_crowd[pair_g])
    candidate = iou >= min(IOU_THRESHOLDS[0], 1 - 1e-10)
    pair_d, pair_g, iou = pair_d[candidate], pair_g[candidate], iou[candidate]

    # From here on, detections in the order that accumulating reads them: by category, highest score first, ties by
    # image, then by rank in the image (COCOeval's stable sort of the images' lists)
    d_category = d_key % n_categories
    order = np.lexsort((d_rank, d_key // n_categories, -d_scores, d_category))
    d_category, d_rank, d_areas = d_category[order], d_rank[order], d_areas[order]
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    pair_d = position[pair_d]

    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    n_t, n_d = len(IOU_THRESHOLDS), len(d)
    matched = np.zeros((len(AREA_RANGES), n_t, n_d), bool)  # detection matched to a ground truth
    ignored = np.zeros((len(AREA_RANGES), n_t, n_d), bool)  # detection ignored
    g_ignored = np.zeros((len(AREA_RANGES), len(g)), bool)
    for a, (low, high) in enumerate(AREA_RANGES.values()):
        g_ignored[a] = ig = g_crowd | (g_areas < low) | (g_areas > high)
        taken = np.zeros((n_t, len(g)), bool)
        # A detection takes the eligible ground truth that COCOeval's scan would end on: not ignored if any is, then
        # the highest IoU, then the last in the scan (ground truth not ignored first, each part in file order).
        order = np.lexsort((pair_g, iou, ~ig[pair_g], pair_d, d_rank[pair_d]))
        p_d, p_g, p_iou = pair_d[order], pair_g[order], iou[order]
        rank_starts = np.searchsorted(d_rank[p_d], np.arange(MAX_DETS[-1] + 1))
        for r in range(MAX_DETS[-1]):
            lo, hi = rank_starts[r], rank_starts[r + 1]
            if lo == hi:
                continue
            rd, rg = p_d[lo:hi], p_g[lo:hi]
            eligible = (p_iou[lo:hi] >= thresholds) & ~(taken[:, rg] & ~g_crowd[rg])
            starts = np.flatnonzero(np.r_[True, rd[1:] != rd[:-1]])
            choice = np.maximum.reduceat(np.where(eligible, np.arange(hi - lo), -1), starts, axis=1)
            t, s = np.nonzero(choice >= 0)
            chosen_d, chosen_g = rd[choice[t, s]], rg[choice[t, s]]
            matched[a, t, chosen_d] = True
            ignored[a, t, chosen_d] = ig[chosen_g]
            taken[t, chosen_g] = True
        ignored[a] |= ~matched[a] & ((d_areas < low) | (d_areas > high))

    # Precision and recall per category, area range and number of detections, over the detections of all images
    precision = -np.ones((n_t, len(RECALL_THRESHOLDS), n_categories, len(AREA_RANGES), len(MAX_DETS)))
    recall = -np.ones((n_t, n_categories, len(AREA_RANGES), len(MAX_DETS)))
    bounds = np.searchsorted(d_category, np.arange(n_categories + 1))
    not_ignored_gt = np.stack([np.bincount(g_category[~ig], minlength=n_categories) for ig in g_ignored])
    for k in range(n_categories):
        lo, hi = bounds[k], bounds[k + 1]
        for a in range(len(AREA_RANGES)):
            npig = not_ignored_gt[a, k]
            if npig == 0:
                continue
            for m, max_det in enumerate(MAX_DETS):
                keep = slice(lo, hi) if max_det == MAX_DETS[-1] else lo + np.flatnonzero(d_rank[lo:hi] < max_det)
                dtm, dtig = matched[a][:, keep], ignored[a][:, keep]
                tp_sum = np.cumsum(dtm & ~dtig, axis=1).astype(float)
                fp_sum = np.cumsum(~dtm & ~dtig, axis=1).astype(float)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # the precision envelope
                q = np.zeros((n_t, len(RECALL_THRESHOLDS)))
                for t in range(n_t):
                    inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                    inds = inds[inds < nd]
                    q[t, : len(inds)] = pr[t, inds]
                precision[:, :, k, a, m] = q
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> list[float]:
    """COCOeval.summarize's 12 numbers for boxes."""
    areas, max_dets = list(AREA_RANGES), list(MAX_DETS)

    def mean(ap, iou=None, area="all", max_det=100):
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == IOU_THRESHOLDS)[0]]
        aind, mind = [areas.index(area)], [max_dets.index(max_det)]
        s = s[:, :, :, aind, mind] if ap else s[:, :, aind, mind]
        return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))

    return [
        mean(1),
        mean(1, iou=0.5),
        mean(1, iou=0.75),
        *(mean(1, area=area) for area in ("small", "medium", "large")),
        *(mean(0, max_det=m) for m in MAX_DETS),
        *(mean(0, area=area) for area in ("small", "medium", "large")),
    ]


def metrics_table(metrics: dict) -> str:
    """Format the 12 numbers and the per-class AP of ``evaluate`` as a text table."""

    def number(x: float) -> str:
        return f"{x:7.3f}" if x >= 0 else f"{'-':>7}"

    lines = ["".join(f"{k:>7}" for k in METRIC_KEYS), "".join(number(metrics[k]) for k in METRIC_KEYS), ""]
    lines.append(f"{'Class':>22}{'Id':>8}{'Instances':>11}{'AP':>7}{'AP50':>7}")
    for c in metrics["per_class"]:
        lines.append(f"{c['name'][:22]:>22}{c['id']:>8}{c['instances']:>11}{number(c['AP'])}{number(c['AP50'])}")
    return "\n".join(lines)
