"""COCO instances JSON to training labels: parsed once, vectorised, and cached next to the JSON keyed on its content.

Class k is the k-th category of the JSON sorted by category id; an image is identified by its ``file_name`` relative to
its split's image folder. Crowd boxes (``iscrowd=1``) are not training targets (evaluation reads them from the JSON),
boxes are clipped to the image, boxes with no area left are dropped, and images without boxes are backgrounds.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from ultralytics.utils import LOGGER

from cspdet.errors import CspdetError

CACHE_VERSION = 1  # bump when the parsing rules or the cache layout change
COUNTS = ("images", "boxes", "crowd", "clipped", "dropped", "backgrounds")
# Segmentation values hold most of a COCO JSON's numbers and training never reads them: cut them out of the text
# before json.loads (polygon lists or RLE dicts), which divides parse time and memory by about three.
# Segmentation is neither read nor checked.
_SEGMENTATION = re.compile(rb'"segmentation"\s*:\s*(?:\[[-+0-9.eE,\s\[\]]*\]|\{[^{}]*\})')


class CocoFormatError(CspdetError, ValueError):
    """A COCO JSON that cannot be used; the message names the file and the field at fault."""


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
        counts (dict): Number of images, boxes (training targets), crowd, clipped, dropped and backgrounds.
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

    def labels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return image ``i``'s classes (k, 1) and normalised xywh boxes (k, 4) as float32, as ultralytics labels."""
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.cls[start:end, None].astype(np.float32), self.boxes[start:end]

    def summary(self) -> str:
        """One line with every count."""
        c = self.counts
        return (
            f"{c['images']} images, {c['boxes']} boxes, {c['crowd']} crowd (not targets), {c['clipped']} clipped, "
            f"{c['dropped']} dropped (no area), {c['backgrounds']} backgrounds"
        )


def cache_path(json_file: Path) -> Path:
    """Where the parsed index of ``json_file`` is cached."""
    return json_file.with_name(f"{json_file.stem}.cspdet.npz")


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
        cache (bool): Read and write the cache file next to the JSON.

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
    """Write the cache through a temporary file, so that a cache file is always complete."""
    arrays = {k: getattr(index, k) for k in CocoIndex.__dataclass_fields__ if k != "counts"}
    arrays["counts"] = np.array([index.counts[k] for k in COUNTS], np.int64)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    except OSError as e:
        LOGGER.warning(f"{path.parent} is not writable, COCO cache not saved ({e})")
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        LOGGER.warning(f"{path}: COCO cache not saved ({e})")
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fail(file: Path, message: str):
    raise CocoFormatError(f"{file}: {message}")


def _first_bad(file: Path, section: str, records: list, field: str, ok, expected: str, optional: bool = False):
    """Raise for the first record of ``section`` whose ``field`` fails ``ok``, naming it by index and id."""
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            _fail(file, f"{section}[{i}] must be an object, got {type(r).__name__}")
        if field not in r:
            if optional:
                continue
            _fail(file, f"{section}[{i}] (id {r.get('id')}) has no '{field}'")
        if not ok(r[field]):
            _fail(file, f"{section}[{i}] (id {r.get('id')}) '{field}' must be {expected}, got {r[field]!r}")
    raise AssertionError("unreachable: a bad record was detected")


def _ints(file: Path, section: str, records: list, field: str, default: int | None = None) -> np.ndarray:
    """Column ``field`` of ``records`` as int64; JSON integers only (``default`` fills a missing field)."""
    optional = default is not None
    try:
        values = [r.get(field, default) for r in records] if optional else [r[field] for r in records]
    except (KeyError, TypeError, AttributeError):
        _first_bad(file, section, records, field, lambda v: True, "", optional)
    if set(map(type, values)) - {int}:  # bool and float are not ids
        _first_bad(file, section, records, field, lambda v: type(v) is int, "an integer", optional)
    return np.array(values, np.int64)


def _duplicates(file: Path, section: str, field: str, values: np.ndarray):
    unique, first, counts = np.unique(values, return_index=True, return_counts=True)
    if (counts > 1).any():
        value = unique[counts > 1][0].item()
        where = np.flatnonzero(values == value)
        _fail(file, f"{section}[{where[1]}] '{field}' {value!r} is a duplicate of {section}[{where[0]}]")


def parse_coco(json_file: Path, key: str = "") -> CocoIndex:
    """Parse and check a COCO instances JSON into a CocoIndex (no cache involved)."""
    enabled = gc.isenabled()
    gc.disable()  # the JSON's millions of objects live until the end: collecting them would be wasted time
    try:
        return _parse(json_file, key)
    finally:
        if enabled:
            gc.enable()


def _parse(json_file: Path, key: str) -> CocoIndex:
    text = _SEGMENTATION.sub(b'"segmentation": null', json_file.read_bytes())
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        try:  # report the position in the file as written
            json.loads(json_file.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            _fail(json_file, f"invalid JSON: {e}")
        raise
    del text
    if not isinstance(d, dict):
        _fail(
            json_file, f"the top level must be an object with 'images', 'annotations' and 'categories', got {type(d)}"
        )
    for section in ("images", "annotations", "categories"):
        if section not in d:
            _fail(json_file, f"missing top-level key '{section}' (a COCO instances JSON has 'images', 'annotations' "
                             "and 'categories')")  # fmt: skip
        if not isinstance(d[section], list):
            _fail(json_file, f"'{section}' must be a list, got {type(d[section]).__name__}")
    categories, images, annotations = d["categories"], d["images"], d["annotations"]

    # Categories: class k is the k-th category by id
    category_ids = _ints(json_file, "categories", categories, "id")
    _duplicates(json_file, "categories", "id", category_ids)
    if not categories:
        _fail(json_file, "'categories' is empty")
    if any(not isinstance(c.get("name"), str) for c in categories):
        _first_bad(json_file, "categories", categories, "name", lambda v: isinstance(v, str), "a string")
    order = np.argsort(category_ids, kind="stable")
    names = np.array([categories[i]["name"] for i in order])
    category_ids = category_ids[order]

    # Images: identified by file_name, sized by width and height
    image_ids = _ints(json_file, "images", images, "id")
    _duplicates(json_file, "images", "id", image_ids)
    sizes = np.zeros((len(images), 2))
    for column, field in enumerate(("height", "width")):
        values = [im.get(field) for im in images]
        if set(map(type, values)) - {int, float} or not all(v > 0 for v in values):
            _first_bad(json_file, "images", images, field, lambda v: type(v) in (int, float) and v > 0, "a number > 0")
        sizes[:, column] = values
    files = [im.get("file_name") for im in images]
    if set(map(type, files)) - {str} or not all(files):
        _first_bad(json_file, "images", images, "file_name", lambda v: isinstance(v, str) and v, "a file name")
    files = np.array(files, dtype=str)
    _duplicates(json_file, "images", "file_name", files)

    # Annotations: image, class and box of each
    n = len(annotations)
    image_of = _ints(json_file, "annotations", annotations, "image_id")
    category = _ints(json_file, "annotations", annotations, "category_id")
    crowd = _ints(json_file, "annotations", annotations, "iscrowd", default=0) != 0
    by_id = np.argsort(image_ids, kind="stable")
    position = np.searchsorted(image_ids, image_of, sorter=by_id).clip(max=max(len(image_ids) - 1, 0))
    image_index = by_id[position] if len(image_ids) else position
    unknown = np.flatnonzero(image_ids[image_index] != image_of) if len(image_ids) else np.arange(n)
    if len(unknown):
        k = unknown[0]
        _fail(
            json_file, f"annotations[{k}] (id {annotations[k].get('id')}) 'image_id' {image_of[k]} is not in 'images'"
        )
    cls = np.searchsorted(category_ids, category).clip(max=len(category_ids) - 1)
    unknown = np.flatnonzero(category_ids[cls] != category)
    if len(unknown):
        k = unknown[0]
        _fail(json_file, f"annotations[{k}] (id {annotations[k].get('id')}) 'category_id' {category[k]} is not in "
                         f"'categories' (ids {category_ids.tolist()})")  # fmt: skip
    boxes = _boxes(json_file, annotations)
    del d, annotations, images, categories

    # Clip to the image, drop what has no area left, skip crowd regions
    hw = sizes[image_index]
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
    clipped_xyxy = xyxy.clip(0, np.tile(hw[:, ::-1], 2))
    has_area = (clipped_xyxy[:, 2] > clipped_xyxy[:, 0]) & (clipped_xyxy[:, 3] > clipped_xyxy[:, 1])
    keep = ~crowd & has_area
    clipped = keep & (clipped_xyxy != xyxy).any(1)
    order = np.argsort(image_index[keep], kind="stable")
    xyxy, wh = clipped_xyxy[keep][order], np.tile(hw[keep][order][:, ::-1], 2)
    xywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1) / wh
    per_image = np.bincount(image_index[keep], minlength=len(image_ids))
    counts = {
        "images": len(image_ids),
        "boxes": int(keep.sum()),
        "crowd": int(crowd.sum()),
        "clipped": int(clipped.sum()),
        "dropped": int((~crowd & ~has_area).sum()),
        "backgrounds": int((per_image == 0).sum()),
    }
    return CocoIndex(
        key=key,
        names=names,
        category_ids=category_ids,
        image_ids=image_ids,
        files=files,
        sizes=sizes.astype(np.int64),
        cls=cls[keep][order].astype(np.int32),
        boxes=xywh.astype(np.float32),
        offsets=np.concatenate([[0], np.cumsum(per_image)]).astype(np.int64),
        counts=counts,
    )


def _boxes(file: Path, annotations: list) -> np.ndarray:
    """All ``bbox`` fields as an (n, 4) float64 array of finite numbers [x, y, width, height]."""

    def ok(v):
        return (
            isinstance(v, list)
            and len(v) == 4
            and all(type(x) in (int, float) for x in v)
            and bool(np.isfinite(v).all())
        )

    expected = "4 finite numbers [x, y, width, height]"
    try:
        boxes = [a["bbox"] for a in annotations]
        valid = not set(map(type, boxes)) - {list} and set(map(len, boxes)) <= {4}
        valid = valid and not set(map(type, chain.from_iterable(boxes))) - {int, float}
    except (KeyError, TypeError):  # no bbox, or not an object
        valid = False
    boxes = np.fromiter(chain.from_iterable(boxes), np.float64, 4 * len(annotations)).reshape(-1, 4) if valid else None
    if not valid or not np.isfinite(boxes).all():
        _first_bad(file, "annotations", annotations, "bbox", ok, expected)
    return boxes
