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
    """Sort records by (image, category, *order); return the sort, each record's group key and its rank in its group."""
    key = image_rank * n_categories + category_rank
    sort = np.lexsort((*order[::-1], key)) if order else np.argsort(key, kind="stable")
    key = key[sort]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    return sort, key, np.arange(len(key)) - np.repeat(starts, np.diff(np.r_[starts, len(key)]))


def _accumulate(gt: Instances, dt: Detections, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's evaluate and accumulate: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where undefined."""
    n_categories = len(gt.category_ids)
    image_rank = np.full(len(gt.image_ids), -1)
    image_rank[np.flatnonzero(scored)[np.argsort(gt.image_ids[scored], kind="stable")]] = np.arange(scored.sum())
    category_rank = np.empty(n_categories, np.int64)
    category_rank[np.argsort(gt.category_ids, kind="stable")] = np.arange(n_categories)

    # Ground truth of the scored images, by (image, category), in file order
    g = np.flatnonzero(scored[gt.images])
    sort, g_key, _ = _groups(image_rank[gt.images[g]], category_rank[gt.categories[g]], n_categories)
    g = g[sort]
    # Detections by (image, category), highest score first (ties in file order), the 100 best of each
    d = np.flatnonzero(scored[dt.images])
    images, categories, scores = image_rank[dt.images[d]], category_rank[dt.categories[d]], dt.scores[d]
    sort, d_key, d_rank = _groups(images, categories, n_categories, -scores)
    best = d_rank < MAX_DETS[-1]
    d, d_key, d_rank = d[sort][best], d_key[best], d_rank[best]

    # Candidate pairs: a detection and a ground truth of its image and category with an IoU of at least 0.5
    groups, d_start, g_start = np.intersect1d(d_key, g_key, return_indices=True)
    d_count = np.searchsorted(d_key, groups, side="right") - d_start
    g_count = np.searchsorted(g_key, groups, side="right") - g_start
    sizes = d_count * g_count
    pair_group = np.repeat(np.arange(len(groups)), sizes)
    offset = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pair_d = d_start[pair_group] + offset // g_count[pair_group]
    pair_g = g_start[pair_group] + offset % g_count[pair_group]
    iou = box_iou(dt.boxes[d[pair_d]], gt.boxes[g[pair_g]], gt.crowd[g[pair_g]])
    candidate = iou >= min(IOU_THRESHOLDS[0], 1 - 1e-10)

    # Detections from here on in the order that accumulating reads them: by category, highest score first, ties by
    # image, then by rank in the image (COCOeval's stable sort of the images' lists)
    order = np.lexsort((d_rank, d_key // n_categories, -dt.scores[d], d_key % n_categories))
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    d, d_rank = d[order], d_rank[order]
    g_crowd, g_areas = gt.crowd[g], gt.areas[g]
    g_ignored = np.stack([g_crowd | (g_areas < low) | (g_areas > high) for low, high in AREA_RANGES.values()])
    pairs = position[pair_d[candidate]], pair_g[candidate], iou[candidate]
    matched, ignored = _match(*pairs, d_rank, dt.boxes[d], g_ignored, g_crowd)
    g_categories = category_rank[gt.categories[g]]
    not_ignored = np.stack([np.bincount(g_categories[~ig], minlength=n_categories) for ig in g_ignored])
    bounds = np.searchsorted(category_rank[dt.categories[d]], np.arange(n_categories + 1))
    return _precision_recall(matched, ignored, d_rank, bounds, not_ignored)


def _match(pair_d, pair_g, iou, d_rank, d_boxes, g_ignored, g_crowd) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching for every area range and IoU threshold, one detection rank at a time
    for all images and categories at once; return whether each detection is matched and whether it is ignored
    (A, T, detections).

    Args:
        pair_d, pair_g, iou (np.ndarray): Candidate pairs: a detection, a ground truth of its image and category, and
            their IoU (at least the lowest threshold).
        d_rank (np.ndarray): Each detection's rank in its image and category (0: highest score).
        d_boxes (np.ndarray): Detection boxes, for their areas.
        g_ignored (np.ndarray): (A, ground truth) whether each ground truth is ignored in each area range.
        g_crowd (np.ndarray): Crowd flags of the ground truth.
    """
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    d_areas = d_boxes[:, 2] * d_boxes[:, 3]
    shape = (len(AREA_RANGES), len(IOU_THRESHOLDS), len(d_rank))
    matched, ignored = np.zeros(shape, bool), np.zeros(shape, bool)
    for a, ((low, high), ig) in enumerate(zip(AREA_RANGES.values(), g_ignored)):
        taken = np.zeros((len(IOU_THRESHOLDS), len(g_crowd)), bool)
        # A detection takes the eligible ground truth that COCOeval's scan would end on: not ignored if any is, then
        # the highest IoU, then the last in the scan (ground truth not ignored first, each part in file order).
        order = np.lexsort((pair_g, iou, ~ig[pair_g], pair_d, d_rank[pair_d]))
        p_d, p_g, p_iou = pair_d[order], pair_g[order], iou[order]
        rank_starts = np.searchsorted(d_rank[p_d], np.arange(MAX_DETS[-1] + 1))
        for lo, hi in zip(rank_starts[:-1].tolist(), rank_starts[1:].tolist()):
            if lo == hi:
                continue
            rd, rg = p_d[lo:hi], p_g[lo:hi]
            eligible = (p_iou[lo:hi] >= thresholds) & ~(taken[:, rg] & ~g_crowd[rg])  # a crowd region takes many
            starts = np.flatnonzero(np.r_[True, rd[1:] != rd[:-1]])
            choice = np.maximum.reduceat(np.where(eligible, np.arange(hi - lo), -1), starts, axis=1)
            t, s = np.nonzero(choice >= 0)
            chosen_d, chosen_g = rd[choice[t, s]], rg[choice[t, s]]
            matched[a, t, chosen_d] = True
            ignored[a, t, chosen_d] = ig[chosen_g]
            taken[t, chosen_g] = True
        ignored[a] |= ~matched[a] & ((d_areas < low) | (d_areas > high))
    return matched, ignored


def _precision_recall(matched, ignored, d_rank, bounds, not_ignored) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate: precision (T, R, K, A, M) and recall (T, K, A, M) of each category (detections
    ``bounds[k]:bounds[k + 1]``, in accumulation order), area range and number of detections per image and category;
    -1 where the category has no ground truth that counts (``not_ignored``: (A, K))."""
    n_t, n_r, (n_a, n_k) = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), not_ignored.shape
    precision = -np.ones((n_t, n_r, n_k, n_a, len(MAX_DETS)))
    recall = -np.ones((n_t, n_k, n_a, len(MAX_DETS)))
    for k, a in zip(*np.nonzero(not_ignored.T)):
        lo, hi = bounds[k], bounds[k + 1]
        for m, max_det in enumerate(MAX_DETS):
            keep = slice(lo, hi) if max_det == MAX_DETS[-1] else lo + np.flatnonzero(d_rank[lo:hi] < max_det)
            dtm, dtig = matched[a][:, keep], ignored[a][:, keep]
            tp_sum = np.cumsum(dtm & ~dtig, axis=1).astype(float)
            fp_sum = np.cumsum(~dtm & ~dtig, axis=1).astype(float)
            nd = tp_sum.shape[1]
            rc = tp_sum / not_ignored[a, k]
            pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            recall[:, k, a, m] = rc[:, -1] if nd else 0
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # the precision envelope
            for t in range(n_t):
                inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                inds = inds[inds < nd]
                precision[t, :, k, a, m] = 0
                precision[t, : len(inds), k, a, m] = pr[t, inds]
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
