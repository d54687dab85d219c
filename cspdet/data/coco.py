"""COCO instances JSON to training labels: parsed once, vectorised, and cached keyed on the JSON's content.

The file is read and checked by ``cspdet.data.coco_format``, exactly as scoring reads it. Class k is the k-th category
of the JSON sorted by category id; an image is identified by its ``file_name`` relative to its split's image folder.
Crowd boxes (``iscrowd=1``) are not training targets (evaluation reads them from the JSON), boxes are clipped to the
image, boxes with no area left are dropped, and images without boxes are backgrounds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from ultralytics.utils import LOGGER

from cspdet.data.cache import cache_file
from cspdet.data.coco_format import CocoFormatError, read_instances
from cspdet.files import atomic_write

__all__ = ["CocoFormatError", "CocoIndex", "cache_path", "content_key", "load_coco", "parse_coco"]

CACHE_VERSION = 2  # bump when the parsing rules or the cache layout change
COUNTS = ("images", "boxes", "crowd", "clipped", "dropped", "backgrounds", "no_area")


@dataclass(frozen=True)
class CocoIndex:
    """The training view of a COCO instances JSON.

    Args:
        key (str): Content hash of the JSON (with the cache version) that this index was built from.
        names (np.ndarray): (nc,) category names, ordered by category id.
        category_ids (np.ndarray): (nc,) sorted category ids; class k is category ``category_ids[k]``.
        image_ids (np.ndarray): (n,) image ids in JSON order.
        files (np.ndarray): (n,) image ``file_name`` values, relative to the split's image folder.
        sizes (np.ndarray): (n, 2) image (height, width) from the JSON.
        cls (np.ndarray): (m,) class index of every training box, grouped by image in image order.
        boxes (np.ndarray): (m, 4) normalised xywh boxes matching ``cls``.
        offsets (np.ndarray): (n + 1,) image i owns boxes ``offsets[i]:offsets[i + 1]``.
        counts (dict): Number of images, boxes (training targets), crowd, clipped, dropped, backgrounds and
            annotations without 'area' (scoring takes the box's width x height).
    """

    key: str
    names: np.ndarray
    category_ids: np.ndarray
    image_ids: np.ndarray
    files: np.ndarray
    sizes: np.ndarray
    cls: np.ndarray
    boxes: np.ndarray
    offsets: np.ndarray
    counts: dict

    @cached_property
    def _label_arrays(self) -> tuple[np.ndarray, list]:
        """What ``labels`` slices: the classes as an (m, 1) float32 array, and the offsets as a list."""
        return self.cls[:, None].astype(np.float32), self.offsets.tolist()

    def labels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return image ``i``'s classes (k, 1) and normalised xywh boxes (k, 4) as float32, as ultralytics labels
        (views of the index's arrays)."""
        cls, offsets = self._label_arrays
        start, end = offsets[i], offsets[i + 1]
        return cls[start:end], self.boxes[start:end]

    def summary(self) -> str:
        """One line with every count."""
        c = self.counts
        return (
            f"{c['images']} images, {c['boxes']} boxes, {c['crowd']} crowd (not targets), {c['clipped']} clipped, "
            f"{c['dropped']} dropped (no area), {c['backgrounds']} backgrounds, {c['no_area']} without 'area' (taken "
            "from the box)"
        )


def cache_path(json_file: Path) -> Path:
    """Where the parsed index of ``json_file`` is cached: cspdet's cache folder (``cspdet.data.cache``)."""
    return cache_file(json_file, ".cspdet.npz")


def content_key(json_file: Path) -> str:
    """Hash of the file's bytes and the cache version."""
    h = hashlib.sha256(f"cspdet-coco-{CACHE_VERSION}".encode())
    with open(json_file, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def load_coco(json_file, cache: bool = True) -> CocoIndex:
    """Return the CocoIndex of a COCO instances JSON, from its cache when the JSON's content is unchanged.

    Args:
        json_file (str | Path): COCO instances JSON.
        cache (bool): Read and write the cache file (``cache_path``).

    Returns:
        (CocoIndex): The parsed annotations.

    Raises:
        CocoFormatError: The JSON is invalid or breaks the COCO format; no cache is written then.
    """
    json_file = Path(json_file)
    if not json_file.is_file():
        raise FileNotFoundError(f"COCO annotations {json_file} not found")
    key = content_key(json_file)
    cached = cache_path(json_file)
    if cache and cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    fields = {k: z[k] for k in z.files if k != "key"}
                    fields["counts"] = dict(zip(COUNTS, fields["counts"].tolist(), strict=True))
                    return CocoIndex(key=key, **fields)
        except Exception as e:  # unreadable or from another layout: parse again
            LOGGER.warning(f"{cached}: ignoring unreadable cache ({e})")
    LOGGER.info(f"Parsing {json_file} ({json_file.stat().st_size / 2**20:.1f} MB)...")
    index = parse_coco(json_file, key)
    if cache:
        _save(index, cached)
    return index


def _save(index: CocoIndex, path: Path):
    """Write the cache whole or not at all; a cache folder that cannot be written only costs the cache."""
    arrays = {k: getattr(index, k) for k in CocoIndex.__dataclass_fields__ if k != "counts"}
    arrays["counts"] = np.array([index.counts[k] for k in COUNTS], np.int64)
    try:
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        LOGGER.warning(f"{path}: COCO cache not saved ({e})")


def parse_coco(json_file: Path, key: str = "") -> CocoIndex:
    """Parse and check a COCO instances JSON into a CocoIndex (no cache involved); see ``cspdet.data.coco_format``."""
    found = read_instances(json_file)
    # Categories: class k is the k-th category by id
    order = np.argsort(found.category_ids, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    names = np.array(found.names, dtype=str)[order]
    category_ids = found.category_ids[order]
    cls = rank[found.categories]

    # Clip to the image, drop what has no area left, skip crowd regions (one contiguous array per coordinate)
    image_index, crowd, sizes = found.images, found.crowd, found.sizes
    x, y, w, h = np.ascontiguousarray(found.boxes.T)
    height, width = sizes[:, 0][image_index], sizes[:, 1][image_index]
    right, bottom = x + w, y + h
    x1, y1, x2, y2 = (np.clip(v, 0, limit) for v, limit in ((x, width), (y, height), (right, width), (bottom, height)))
    has_area = (x2 > x1) & (y2 > y1)
    keep = ~crowd & has_area
    clipped = keep & ((x1 != x) | (y1 != y) | (x2 != right) | (y2 != bottom))
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(image_index[kept], kind="stable")]
    x1, y1, x2, y2, width, height = (v[kept] for v in (x1, y1, x2, y2, width, height))
    xywh = np.empty((len(kept), 4), np.float32)
    xywh[:, 0], xywh[:, 1] = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    xywh[:, 2], xywh[:, 3] = (x2 - x1) / width, (y2 - y1) / height
    per_image = np.bincount(image_index[keep], minlength=len(found.image_ids))
    counts = {
        "images": len(found.image_ids),
        "boxes": int(keep.sum()),
        "crowd": int(crowd.sum()),
        "clipped": int(clipped.sum()),
        "dropped": int((~crowd & ~has_area).sum()),
        "backgrounds": int((per_image == 0).sum()),
        "no_area": int(found.no_area.sum()),
    }
    return CocoIndex(
        key=key,
        names=names,
        category_ids=category_ids,
        image_ids=found.image_ids,
        files=np.array(found.files, dtype=str),
        sizes=sizes.astype(np.int64),
        cls=cls[kept].astype(np.int32),
        boxes=xywh,
        offsets=np.concatenate([[0], np.cumsum(per_image)]).astype(np.int64),
        counts=counts,
    )
