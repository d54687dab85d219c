"""COCO instances JSON as cspdet reads it: one reader and one set of rules for training and for scoring.

Training (``cspdet.data.coco``) and scoring (``cspdet.eval.coco``) both read a file with ``read_instances`` and check
it with ``check_instances``, so a file that trains can be scored, and a bad one fails before training with one error
naming the file and the field, e.g. ``instances.json: annotations[3] (id 7) 'iscrowd' must be 0 or 1, got 2``.

The rules, beyond the COCO layout (objects with 'images', 'annotations' and 'categories' lists of objects):

- ids are integers (not bools or floats) of 64 bits; image and category ids are unique, and every annotation's
  ``image_id`` and ``category_id`` exist;
- strings are Unicode text (no lone surrogates); categories have a string ``name``; images a positive ``width`` and
  ``height`` and a ``file_name`` inside the split's image folder (relative, without '..'), unique once normalised;
- ``bbox`` is [x, y, width, height] of finite numbers with a width and height of at least 0; ``iscrowd`` is 0 or 1
  (0 when absent); ``area`` is a finite number of at least 0, and when absent the box's width x height;
- numbers stay below 2**31 in magnitude (sizes and coordinates), so that areas and int64 ids never overflow;
- 'images' and 'categories' are not empty; other keys are ignored, and ``segmentation`` is neither read nor checked.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import posixpath
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from cspdet.errors import CspdetError

LIMIT = 2**31  # sizes, coordinates and areas' sides stay below it
ID_RANGE = (-(2**63), 2**63)  # int64
# Segmentation values hold most of a COCO JSON's numbers, and box training and scoring never read them: cut well-formed
# ones (polygon lists or RLE dicts) out of the text before json.loads, which divides parse time and memory by three.
_WS = r"[ \t\n\r]*"  # JSON whitespace
_NUMBER = r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMBERS = rf"\[{_WS}(?:{_NUMBER}(?:{_WS},{_WS}{_NUMBER})*)?{_WS}\]"
_COUNTS = rf'"counts"{_WS}:{_WS}(?:"(?:[ !#-\[\]-~]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{{4}})*"|{_NUMBERS})'
_SIZE = rf'"size"{_WS}:{_WS}{_NUMBERS}'
_SEGMENTATION = re.compile(  # only well-formed JSON is cut: a syntax error anywhere fails as it would in json.loads
    rf'"segmentation"{_WS}:{_WS}(?:\[{_WS}(?:{_NUMBERS}(?:{_WS},{_WS}{_NUMBERS})*)?{_WS}\]'
    rf"|\{{{_WS}(?:{_COUNTS}{_WS},{_WS}{_SIZE}|{_SIZE}{_WS},{_WS}{_COUNTS}){_WS}\}})".encode()
)
_MISSING = object()


class CocoFormatError(CspdetError, ValueError):
    """A COCO JSON that cannot be used; the message names the file and the field at fault."""


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: building ~10⁶ dicts and lists would trigger many useless full passes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _loads(file, text: bytes):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, too many digits, too deep
        raise CocoFormatError(f"{file}: invalid JSON: {str(e) or type(e).__name__}") from None


@gc_paused()
def read_json(file) -> object:
    """Parse a JSON file, raising CocoFormatError with the file name when it is missing or not JSON."""
    try:
        text = Path(file).read_bytes()
    except FileNotFoundError:
        raise CocoFormatError(f"{file}: file not found") from None
    return _loads(file, text)


@gc_paused()
def read_instances(file) -> object:
    """Parse a COCO instances JSON with its ``segmentation`` values replaced by null (see the module docstring)."""
    try:
        text = Path(file).read_bytes()
    except FileNotFoundError:
        raise CocoFormatError(f"{file}: file not found") from None
    try:
        return json.loads(_SEGMENTATION.sub(b'"segmentation": null', text))
    except (ValueError, RecursionError):
        return _loads(file, text)  # report the error at its position in the file as written


@dataclass(frozen=True)
class Instances:
    """The checked content of a COCO instances JSON, field by field (all in JSON order).

    Args:
        category_ids (np.ndarray): (nc,) category ids.
        names (list[str]): (nc,) category names.
        image_ids (np.ndarray): (n,) image ids.
        sizes (np.ndarray): (n, 2) image (height, width).
        files (list[str]): (n,) normalised ``file_name`` values, relative to the split's image folder.
        images (np.ndarray): (m,) position in ``image_ids`` of each annotation's image.
        categories (np.ndarray): (m,) position in ``category_ids`` of each annotation's category.
        boxes (np.ndarray): (m, 4) [x, y, width, height].
        crowd (np.ndarray): (m,) bool, ``iscrowd``.
        no_area (np.ndarray): (m,) bool, the annotation has no ``area`` (its box's width x height stands for it).
    """

    category_ids: np.ndarray
    names: list
    image_ids: np.ndarray
    sizes: np.ndarray
    files: list
    images: np.ndarray
    categories: np.ndarray
    boxes: np.ndarray
    crowd: np.ndarray
    no_area: np.ndarray


def _short(value) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else f"{text[:57]}..."


def _where(section: str, i: int, record: dict) -> str:
    """``section[i] (id X)``: a record by position, and by id when it has a valid one."""
    rid = record.get("id")
    return f"{section}[{i}] (id {rid})" if type(rid) is int and ID_RANGE[0] <= rid < ID_RANGE[1] else f"{section}[{i}]"


class FieldChecker:
    """Rules applied field by field to a list of JSON objects: a fast test of a whole column, and on failure a walk over
    the records that names the first bad one.

    Args:
        file (str | Path): The file's name in messages.
    """

    def __init__(self, file):
        self.file = file

    def fail(self, message: str):
        raise CocoFormatError(f"{self.file}: {message}")

    def section(self, d: dict, section: str) -> list:
        """The list of objects ``d[section]`` of a COCO instances JSON."""
        if section not in d:
            self.fail(f"missing top-level key '{section}' (a COCO instances JSON has 'images', 'annotations' and "
                      "'categories')")  # fmt: skip
        return self.objects(d[section], f"'{section}'", section)

    def objects(self, records, what: str, section: str) -> list:
        """``records`` (called ``what``), which must be a list of JSON objects."""
        if not isinstance(records, list):
            self.fail(f"{what} must be a list, got {type(records).__name__}")
        if set(map(type, records)) - {dict}:
            i = next(i for i, r in enumerate(records) if not isinstance(r, dict))
            self.fail(f"{section}[{i}] must be an object, got {type(records[i]).__name__}")
        return records

    def first_bad(self, section: str, records: list, field: str, ok, expected: str, default=_MISSING):
        """Raise for the first record whose ``field`` fails ``ok`` (``default`` stands for a missing field)."""
        for i, r in enumerate(records):
            value = r.get(field, default)
            if value is _MISSING:
                self.fail(f"{_where(section, i, r)} has no '{field}'")
            if not ok(value):
                self.fail(f"{_where(section, i, r)} '{field}' must be {expected}, got {_short(value)}")

    def ints(self, section: str, records: list, field: str, default=_MISSING, allowed=None) -> np.ndarray:
        """Column ``field`` as int64: integers only (bools and floats are not ids), in ``allowed`` if given."""
        values = [r.get(field, default) for r in records]
        low, high = ID_RANGE
        fast = not set(map(type, values)) - {int} and (not values or (low <= min(values) and max(values) < high))
        if not fast or (allowed is not None and not np.isin(np.array(values, np.int64), allowed).all()):
            if allowed is None:
                self.first_bad(section, records, field, lambda v: _integer(v) and low <= v < high,
                               "a 64-bit integer", default)  # fmt: skip
            else:
                self.first_bad(section, records, field, lambda v: _integer(v) and v in allowed,
                               " or ".join(map(str, allowed)), default)  # fmt: skip
        return np.array(values, np.int64)

    def numbers(self, section: str, records: list, field: str, expected: str, ok, default=_MISSING) -> np.ndarray:
        """Column ``field`` as float64: finite numbers (not bools) for which ``ok(array)`` holds element-wise."""
        values = [r.get(field, default) for r in records]
        array = None
        if not set(map(type, values)) - {int, float}:
            with contextlib.suppress(OverflowError):  # an integer beyond float64
                array = np.array(values, np.float64)
        if array is None or not ok(array).all():
            self.first_bad(section, records, field, lambda v: _number(v) and bool(ok(np.float64(v))), expected,
                           default)  # fmt: skip
            array = np.array(values, np.float64)
        return array

    def boxes(self, section: str, records: list) -> np.ndarray:
        """All ``bbox`` fields as an (m, 4) float64 array [x, y, width, height]; see the rules."""
        boxes = [r.get("bbox", _MISSING) for r in records]
        if not boxes:
            return np.zeros((0, 4))
        array = None
        if not set(map(type, boxes)) - {list} and set(map(len, boxes)) <= {4}:
            if not set(map(type, chain.from_iterable(boxes))) - {int, float}:
                with contextlib.suppress(OverflowError):
                    array = np.fromiter(chain.from_iterable(boxes), np.float64, 4 * len(boxes)).reshape(-1, 4)
        if array is None or not _box_ok(array).all():

            def ok(v):
                return isinstance(v, list) and len(v) == 4 and all(map(_number, v)) and bool(_box_ok(np.array([v])))

            self.first_bad(section, records, "bbox", ok,
                           "[x, y, width, height]: 4 finite numbers below 2**31, width and height >= 0")  # fmt: skip
            array = np.array(boxes, np.float64)
        return array

    def unique(self, section: str, records: list, field: str, values):
        """Raise for the first record whose ``field`` repeats an earlier record's."""
        if len(set(values)) < len(values):
            seen = {}
            for i, v in enumerate(values):
                if v in seen:
                    self.fail(f"{_where(section, i, records[i])} '{field}' {_short(v)} is a duplicate of "
                              f"{section}[{seen[v]}]")  # fmt: skip
                seen[v] = i

    def known(self, section: str, records: list, field: str, values: np.ndarray, ids: np.ndarray, target: str):
        """Positions of ``values`` in ``ids`` (not empty); raise for the first value that ``target`` lacks."""
        order = np.argsort(ids, kind="stable")
        position = np.searchsorted(ids, values, sorter=order).clip(max=len(ids) - 1)
        index = order[position]
        unknown = np.flatnonzero(ids[index] != values)
        if len(unknown):
            k = unknown[0]
            count = f" ({len(unknown)} of {len(values)} {section})" if len(unknown) > 1 else ""
            self.fail(f"{_where(section, k, records[k])} '{field}' {values[k]} is not in {target}{count}")
        return index

    def texts(self, section: str, records: list, field: str, expected: str = "a string of Unicode text", ok=None):
        """Column ``field``: strings that are valid Unicode (JSON escapes can make lone surrogates, which no file
        system, terminal or plot accepts) and pass ``ok``."""
        values = [r.get(field, _MISSING) for r in records]
        if set(map(type, values)) - {str} or not _unicode("".join(values)) or (ok and not all(map(ok, values))):
            self.first_bad(section, records, field, lambda v: _unicode(v) and (ok is None or ok(v)), expected)
        return values

    def files(self, images: list) -> list[str]:
        """The images' ``file_name`` values, normalised; each inside the split's image folder, none twice."""
        names = self.texts("images", images, "file_name", "a relative path of Unicode text inside the split's image "
                           "folder (no leading '/', drive or '..')", _inside)  # fmt: skip
        names = [posixpath.normpath(n) for n in names]
        self.unique("images", images, "file_name", names)
        return names


def _integer(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _number(v) -> bool:
    """A finite int or float (numpy's too, for callers that pass arrays' items); not a bool."""
    if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _box_ok(boxes: np.ndarray) -> np.ndarray:
    return (np.abs(boxes) < LIMIT).all(1) & (boxes[:, 2:] >= 0).all(1)


def _unicode(text) -> bool:
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(name) -> bool:
    """Whether ``name`` is a file path relative to its folder that stays inside it (on POSIX and Windows)."""
    if not isinstance(name, str) or not name or "\0" in name or name[0] in "/\\" or name[1:2] == ":":
        return False
    parts = re.split(r"[\\/]", name)
    return ".." not in parts and posixpath.normpath(name.replace("\\", "/")) != "."


def check_instances(d, file) -> Instances:
    """Check a parsed COCO instances JSON against the rules (see the module docstring).

    Args:
        d (object): The parsed JSON.
        file (str | Path): Its name in messages.

    Returns:
        (Instances): The fields that training and scoring read.

    Raises:
        CocoFormatError: The first rule that the JSON breaks, naming the file, the record and the field.
    """
    check = FieldChecker(file)
    if not isinstance(d, dict):
        check.fail(f"the top level must be an object with 'images', 'annotations' and 'categories', got "
                   f"{type(d).__name__}")  # fmt: skip
    images, annotations, categories = (check.section(d, section) for section in ("images", "annotations", "categories"))
    for section, records in (("images", images), ("categories", categories)):
        if not records:
            check.fail(f"'{section}' is empty")

    category_ids = check.ints("categories", categories, "id")
    check.unique("categories", categories, "id", category_ids.tolist())
    names = check.texts("categories", categories, "name")

    image_ids = check.ints("images", images, "id")
    check.unique("images", images, "id", image_ids.tolist())
    sizes = np.stack(
        [
            check.numbers("images", images, field, "a number > 0 and below 2**31", lambda v: (v > 0) & (v < LIMIT))
            for field in ("height", "width")
        ],
        1,
    )
    files = check.files(images)

    image_of = check.ints("annotations", annotations, "image_id")
    category_of = check.ints("annotations", annotations, "category_id")
    images_of = check.known("annotations", annotations, "image_id", image_of, image_ids, "'images'")
    categories_of = check.known("annotations", annotations, "category_id", category_of, category_ids, "'categories'")
    boxes = check.boxes("annotations", annotations)
    crowd = check.ints("annotations", annotations, "iscrowd", default=0, allowed=(0, 1))
    check.numbers("annotations", annotations, "area", "a finite number >= 0", lambda v: np.isfinite(v) & (v >= 0),
                  default=0.0)  # fmt: skip
    return Instances(
        category_ids=category_ids,
        names=names,
        image_ids=image_ids,
        sizes=sizes,
        files=files,
        images=images_of,
        categories=categories_of,
        boxes=boxes,
        crowd=crowd.astype(bool),
        no_area=np.array(["area" not in a for a in annotations], bool),
    )
