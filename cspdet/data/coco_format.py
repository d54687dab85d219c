"""COCO instances JSON as cspdet reads it: one reader and one set of rules for training and for scoring.

Training (``cspdet.data.coco``) and scoring (``cspdet.eval.coco``) both read a file with ``read_instances``, so a
file that trains can be scored, and a bad one fails before training with one error naming the file and the field,
e.g. ``instances.json: annotations[3] (id 7) 'iscrowd' must be 0 or 1, got 2``.

The rules, beyond the COCO layout (objects with 'images', 'annotations' and 'categories' lists of objects):

- ids are integers (not bools or floats) of 64 bits; image and category ids are unique, and every annotation's
  ``image_id`` and ``category_id`` exist;
- strings are Unicode text (no lone surrogates); categories have a string ``name``; images a positive ``width`` and
  ``height`` and a ``file_name`` inside the split's image folder (relative, without '..'), unique once normalised;
- ``bbox`` is [x, y, width, height] of finite numbers with a width and height of at least 0; ``iscrowd`` is 0 or 1
  (0 when absent); ``area`` is a finite number of at least 0, and when absent the box's width x height;
- numbers stay below 2**31 in magnitude (sizes and coordinates), so that areas and int64 ids never overflow;
- 'images' and 'categories' are not empty; other keys are ignored, and ``segmentation`` is neither read nor checked.

Two paths read a file, and they agree on every file:

- the typed path: msgspec decodes the file into Structs that declare only the fields above, with types as strict as
  the rules (a ``segmentation`` is skipped without ever being built), then the rules between records (unique and
  known ids, file names) are tested on whole columns. A file larger than ``2 * PIECE`` bytes is decoded piece by piece
  (see ``_decode_pieces``), so that its text is never in memory all at once;
- the checking path, for a file that the typed path rejects: msgspec decodes it with loose types (json.loads where
  msgspec refuses the text: NaN literals, lone surrogates, a byte-order mark, UTF-16) and ``check_instances`` applies
  the rules field by field, naming the first record that breaks one.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import json
import math
import mmap
import os
import posixpath
import re
import secrets
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
import numpy as np
from msgspec import UNSET, Meta, Struct, UnsetType

from cspdet.errors import CspdetError

LIMIT = 2**31  # sizes, coordinates and areas' sides stay below it
ID_RANGE = (-(2**63), 2**63)  # int64
PIECE = 1 << 25  # bytes of JSON text decoded at a time on the typed path
_MISSING = object()

# ------------------------------------------------------------------------------------------- typed records (fast)
Id = Annotated[int, Meta(ge=ID_RANGE[0], le=ID_RANGE[1] - 1)]
Coordinate = Annotated[float, Meta(gt=-LIMIT, lt=LIMIT)]  # msgspec floats are finite: '1e999' does not decode
Side = Annotated[float, Meta(ge=0, lt=LIMIT)]
Box = tuple[Coordinate, Coordinate, Side, Side]
NO_AREA = -1.0  # stands for a missing 'area' (a present one is >= 0)


class Image(Struct, gc=False):
    id: Id
    file_name: str
    width: Annotated[float, Meta(gt=0, lt=LIMIT)]
    height: Annotated[float, Meta(gt=0, lt=LIMIT)]


class Annotation(Struct, gc=False):
    image_id: Id
    category_id: Id
    bbox: Box
    area: Annotated[float, Meta(ge=0)] = NO_AREA
    iscrowd: Literal[0, 1] = 0


class Category(Struct, gc=False):
    id: Id
    name: str


class Prediction(Struct, gc=False):
    """A detection of the COCO results format."""

    image_id: Id
    category_id: Id
    bbox: Box
    score: float


class _Sections(Struct, gc=False):
    images: list[Image] | UnsetType = UNSET
    annotations: list[Annotation] | UnsetType = UNSET
    categories: list[Category] | UnsetType = UNSET


_SECTIONS = msgspec.json.Decoder(_Sections)
_ANNOTATIONS = msgspec.json.Decoder(list[Annotation])
_PREDICTIONS = msgspec.json.Decoder(list[Prediction])


class _NotUtf8(ValueError):
    """Text that is not UTF-8 (msgspec checks only the strings it decodes, not those it skips)."""


_REJECTED = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, _NotUtf8)  # what the typed decode raises


# ----------------------------------------------------------------------------------------- loose records (checking)
def _loose_type(record: type, *extra: str) -> type:
    """A Struct with ``record``'s fields and ``extra`` ones, of any type, UNSET where absent: what the checks read."""
    return msgspec.defstruct(f"Loose{record.__name__}", [(f, Any, UNSET) for f in (*extra, *record.__struct_fields__)])


_LooseSections = msgspec.defstruct(
    "LooseSections",
    [
        (section, list[_loose_type(record, *extra)] | UnsetType, UNSET)
        for section, record, extra in (
            ("images", Image, ()),
            ("annotations", Annotation, ("id",)),
            ("categories", Category, ()),
        )
    ],
)
_LOOSE = msgspec.json.Decoder(_LooseSections)


class CocoFormatError(CspdetError, ValueError):
    """A COCO JSON that cannot be used; the message names the file and the field at fault."""


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: building ~10⁶ objects would trigger many useless full passes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _opened(file, name=None):
    """``file`` open to read bytes; a CocoFormatError naming it (``name``, by default its path) if it is missing."""
    try:
        f = open(file, "rb")
    except FileNotFoundError:
        raise CocoFormatError(f"{name or file}: file not found") from None
    with f:
        yield f


def _read_bytes(file, name=None) -> bytes:
    with _opened(file, name) as f:
        return f.read()


def _utf8(text) -> bytes:
    """``text`` (bytes-like), which must be UTF-8 as JSON is; raises _NotUtf8 otherwise."""
    if len(text) and np.frombuffer(text, np.uint8).max() >= 0x80:
        try:
            codecs.utf_8_decode(text, "strict", True)
        except UnicodeDecodeError:
            raise _NotUtf8 from None
    return text


def _loads(file, text: bytes):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, too many digits, too deep
        raise CocoFormatError(f"{file}: invalid JSON: {str(e) or type(e).__name__}") from None


@gc_paused()
def read_json(file) -> object:
    """Parse a JSON file, raising CocoFormatError with the file name when it is missing or not JSON."""
    return _loads(file, _read_bytes(file))


@gc_paused()
def read_predictions(file) -> list[Prediction] | None:
    """A COCO results file decoded into typed ``Prediction``s, or None when a record breaks a field rule (the caller
    then checks ``read_json(file)`` field by field for the message)."""
    text = _read_bytes(file)
    try:
        return _PREDICTIONS.decode(_utf8(text))
    except _REJECTED:
        return None


@dataclass(frozen=True)
class Instances:
    """The checked content of a COCO instances JSON, field by field (all in JSON order).

    Args:
        file (str): The file's name in messages.
        category_ids (np.ndarray): (nc,) category ids.
        names (list[str]): (nc,) category names.
        image_ids (np.ndarray): (n,) image ids.
        sizes (np.ndarray): (n, 2) image (height, width).
        files (list[str]): (n,) normalised ``file_name`` values, relative to the split's image folder.
        images (np.ndarray): (m,) position in ``image_ids`` of each annotation's image.
        categories (np.ndarray): (m,) position in ``category_ids`` of each annotation's category.
        boxes (np.ndarray): (m, 4) [x, y, width, height].
        areas (np.ndarray): (m,) ``area``, or the box's width x height where it is absent.
        crowd (np.ndarray): (m,) bool, ``iscrowd``.
        no_area (np.ndarray): (m,) bool, the annotation has no ``area``.
    """

    file: str
    category_ids: np.ndarray
    names: list
    image_ids: np.ndarray
    sizes: np.ndarray
    files: list
    images: np.ndarray
    categories: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    crowd: np.ndarray
    no_area: np.ndarray

    @property
    def dataset(self) -> dict:
        """The checked annotations as a COCO instances dict (annotation ids 1..m, areas filled in)."""
        heights, widths = self.sizes.T.tolist()
        images = [
            {"id": i, "file_name": f, "width": w, "height": h}
            for i, f, w, h in zip(self.image_ids.tolist(), self.files, widths, heights)
        ]
        annotations = [
            {"id": k, "image_id": i, "category_id": c, "bbox": b, "area": a, "iscrowd": int(z)}
            for k, (i, c, b, a, z) in enumerate(
                zip(
                    self.image_ids[self.images].tolist(),
                    self.category_ids[self.categories].tolist(),
                    self.boxes.tolist(),
                    self.areas.tolist(),
                    self.crowd.tolist(),
                ),
                1,
            )
        ]
        categories = [{"id": c, "name": n} for c, n in zip(self.category_ids.tolist(), self.names)]
        return {"images": images, "annotations": annotations, "categories": categories}


def read_instances(file, name: str | None = None) -> Instances:
    """Read and check a COCO instances JSON file (see the module docstring).

    Args:
        file (str | Path): The file.
        name (str): Its name in messages; the path as given by default.

    Returns:
        (Instances): The fields that training and scoring read.

    Raises:
        CocoFormatError: The file is missing, not JSON, or breaks a rule; the message names the file, the record and
            the field.
    """
    name = name or file
    with gc_paused():
        refused = False  # msgspec refuses the text itself (NaN, lone surrogates, BOM, not UTF-8, ...)
        try:
            if (found := _typed_instances(_decode_sections(file, name), name)) is not None:
                return found
        except _REJECTED as e:
            refused = not isinstance(e, msgspec.ValidationError)
        text = _read_bytes(file, name)
        d = _decode_loose(text, refused)
        if d is None:  # as json.loads reads it
            d = _loads(name, text)
        del text
        return check_instances(d, name)


def _decode_loose(text: bytes, refused: bool) -> dict | None:
    """The text decoded with loose types, as dicts of the fields that the rules read (no segmentations), or None where
    msgspec refuses it. json.loads' NaN, Infinity and -Infinity, which msgspec refuses (at once where the typed decode
    was ``refused`` by the text), are read as json.loads reads them: each becomes a marked list first (one inside a
    string or in a key's place then breaks the text, and one in a record's place breaks its type, where json.loads
    would refuse it), and its float again in the decoded fields."""
    if not refused:
        try:
            return msgspec.to_builtins(_LOOSE.decode(_utf8(text)))
        except msgspec.DecodeError:  # a NaN, say, after the record where the typed decode stopped
            pass
        except _REJECTED:
            return None
    nonce, marks = secrets.token_hex(16), {}
    for k, (literal, value) in enumerate(((b"-Infinity", -math.inf), (b"Infinity", math.inf), (b"NaN", math.nan))):
        if literal in text:
            text, marks[k] = text.replace(literal, b'["%s", %d]' % (nonce.encode(), k)), value
    if not marks:
        return None
    try:
        d = msgspec.to_builtins(_LOOSE.decode(_utf8(text)))
    except _REJECTED:
        return None

    def restore(value):
        if type(value) is list:
            return marks[value[1]] if len(value) == 2 and value[0] == nonce else [restore(v) for v in value]
        if type(value) is dict:
            return {k: restore(v) for k, v in value.items()}
        return value

    return restore(d)


# ------------------------------------------------------------------------------------------------ the typed path
_ANNOTATIONS_KEY = re.compile(rb'"annotations"[ \t\n\r]*:[ \t\n\r]*\[')
_RECORD_END = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*\{")  # '}, {': between two records, or inside a record's value
_ARRAY_END = re.compile(rb"\}[ \t\n\r]*\]")  # '}]': after an array's last record, or inside a record's value


class _Unsplit(Exception):
    """The file could not be cut into pieces: decode it whole."""


def _decode_sections(file, name) -> _Sections:
    """The file decoded into typed records; raises msgspec's errors where a record breaks a field rule."""
    with _opened(file, name) as f:
        if os.fstat(f.fileno()).st_size > 2 * PIECE:
            with contextlib.suppress(_Unsplit, msgspec.DecodeError):  # bad syntax, or a cut inside a record
                return _decode_pieces(f)
            f.seek(0)
        return _SECTIONS.decode(_utf8(f.read()))


def _decode_pieces(f) -> _Sections:
    """Decode a large file piece by piece, holding about ``PIECE`` bytes of its text in memory at a time.

    The top-level ``"annotations": [`` is found in the text, and the array is cut after records, at ``}, {``. Each
    cut is checked by decoding the pieces: the head (the text before the array, closed with ``[]}``), every piece of
    the array (``[`` + its records + ``]``), and the tail (the last records and the rest of the file, opened with a key
    of its own). Each piece decodes only where the decoder, having read the text before it, stands exactly where the
    piece's opening puts it: outside any string, inside this array, after a complete record. So when every piece
    decodes, the whole file does, into the same records. Raises msgspec's errors where a piece does not decode (a
    DecodeError also where a cut fell inside a record), and _Unsplit where 'annotations' is not found or is repeated
    after the array (which would replace it).
    """
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as text:  # the bytes changed below stay in this process
        if (start := _array_start(text)) is None:
            raise _Unsplit
        sections = _SECTIONS.decode(_utf8(text[:start] + b"[]}"))
        _release(text, 0, start)
        columns = []
        while (cut := _last_record_end(text, start, start + PIECE)) is not None:
            try:
                records = _records(text, start, cut)
            except _REJECTED:  # a bad record, or a cut past the end of the array: cut before its first possible end
                if (end := _ARRAY_END.search(text, start, cut)) is None:
                    raise
                if (cut := _last_record_end(text, start, end.start())) is None:
                    break
                records = _records(text, start, cut)
            columns.append(_annotation_columns(records))
            _release(text, start, cut)
            start = cut
        key = secrets.token_hex(16)  # a top-level key that no file holds
        tail = b'{"' + key.encode() + b'":[' + text[start + 1 :]
    tail_type = msgspec.defstruct("Tail", [("rest", list[Annotation], [])], bases=(_Sections,), rename={"rest": key})
    tail = msgspec.json.decode(_utf8(tail), type=tail_type)
    if tail.annotations is not UNSET:  # another top-level 'annotations' after this one
        raise _Unsplit
    columns.append(_annotation_columns(tail.rest))
    for section in ("images", "categories"):
        if getattr(tail, section) is not UNSET:  # a key repeated in JSON takes its last value
            setattr(sections, section, getattr(tail, section))
    sections.annotations = _Columns(*map(np.concatenate, zip(*columns)))
    return sections


def _array_start(text) -> int | None:
    """Position of the '[' of the first ``"annotations": [`` in ``text`` whose first quote is not escaped, or None."""
    start = 0
    while (start := text.find(b'"annotations"', start)) >= 0:
        if (match := _ANNOTATIONS_KEY.match(text, start)) and text[start - 1 : start] != b"\\":
            return match.end() - 1
        start += 1
    return None


def _last_record_end(text, start: int, end: int) -> int | None:
    """Position of the ',' of the last ``}, {`` in ``text[start:end]``, or None."""
    for _ in range(1000):  # each record holds a few '}' at most
        end = text.rfind(b"}", start + 1, end)
        if end < 0:
            return None
        if match := _RECORD_END.match(text, end):
            return text.find(b",", end, match.end())
    return None


def _records(text, start: int, cut: int) -> list[Annotation]:
    """The records between ``start`` and ``cut`` (the ',' or '[' before the first and the ',' after the last)."""
    text[start], text[cut] = ord("["), ord("]")
    try:
        with memoryview(text)[start : cut + 1] as piece:  # released even where a traceback keeps the view
            return _ANNOTATIONS.decode(_utf8(piece))
    finally:
        text[cut] = ord(",")


def _release(text: mmap.mmap, start: int, end: int):
    """Give back the memory of the pages of ``text`` that lie wholly before ``end`` (from ``start``'s page on)."""
    if hasattr(text, "madvise") and hasattr(mmap, "MADV_DONTNEED"):  # not on Windows: the pages stay until the end
        low, high = start - start % mmap.PAGESIZE, end - end % mmap.PAGESIZE
        if high > low:
            text.madvise(mmap.MADV_DONTNEED, low, high - low)


class _Columns(NamedTuple):
    """Annotations as columns: image and category ids, boxes, areas (``NO_AREA`` where absent), crowd."""

    image_ids: np.ndarray
    category_ids: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    crowd: np.ndarray


def column(records: list, field: str, dtype=np.int64) -> np.ndarray:
    """Field ``field`` of typed records as an array."""
    return np.fromiter(map(attrgetter(field), records), dtype, len(records))


def box_column(records: list) -> np.ndarray:
    """The ``bbox`` fields of typed records as an (n, 4) float64 array."""
    return np.fromiter(chain.from_iterable(map(attrgetter("bbox"), records)), np.float64, 4 * len(records)).reshape(
        -1, 4
    )


def _annotation_columns(annotations: list[Annotation]) -> _Columns:
    return _Columns(
        column(annotations, "image_id"),
        column(annotations, "category_id"),
        box_column(annotations),
        column(annotations, "area", np.float64),
        column(annotations, "iscrowd", bool),
    )


def _plain_paths(names: list[str]) -> bool:
    """Whether every name is a relative POSIX path whose components are not empty and start with no '.', with no NUL,
    backslash or colon: such a name stays inside its folder and is already normalised."""
    text = "\0" + "\0".join(names) + "\0"
    return text.count("\0") == len(names) + 1 and not any(
        p in text for p in ("\0\0", "\\", ":", "//", "\0/", "/\0", "\0.", "/.")
    )


def _typed_instances(sections: _Sections, file) -> Instances | None:
    """The Instances of a typed decode, or None when a rule between records fails (the checking path names it)."""
    images, annotations, categories = sections.images, sections.annotations, sections.categories
    if any(s is UNSET for s in (images, annotations, categories)) or not images or not categories:
        return None
    if isinstance(annotations, list):
        annotations = _annotation_columns(annotations)
    n = len(images)
    category_ids, image_ids = column(categories, "id"), column(images, "id")
    names = list(map(attrgetter("file_name"), images))
    if not _plain_paths(names):
        if not all(map(_inside, names)):
            return None
        names = [posixpath.normpath(name) for name in names]
    if len(set(names)) < n or len(np.unique(image_ids)) < n or len(np.unique(category_ids)) < len(category_ids):
        return None
    image_of, known_images = positions(annotations.image_ids, image_ids)
    category_of, known_categories = positions(annotations.category_ids, category_ids)
    if not (known_images.all() and known_categories.all()):
        return None
    boxes, areas = annotations.boxes, annotations.areas
    no_area = areas == NO_AREA
    return Instances(
        file=str(file),
        category_ids=category_ids,
        names=list(map(attrgetter("name"), categories)),
        image_ids=image_ids,
        sizes=np.stack([column(images, "height", np.float64), column(images, "width", np.float64)], 1),
        files=names,
        images=image_of,
        categories=category_of,
        boxes=boxes,
        areas=np.where(no_area, boxes[:, 2] * boxes[:, 3], areas),
        crowd=annotations.crowd,
        no_area=no_area,
    )


def positions(values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position in ``ids`` (not empty) of each of ``values``, and whether ``ids`` has it."""
    low, high = int(ids.min()), int(ids.max())
    if high - low < 8 * len(ids) + 2**16:  # dense ids (COCO's): a lookup table
        table = np.full(high - low + 1, len(ids), np.int64)
        table[ids[::-1] - low] = np.arange(len(ids) - 1, -1, -1)  # the first of repeated ids
        inside = (values >= low) & (values <= high)
        index = table[np.where(inside, values - low, 0)]
        found = inside & (index < len(ids))
        return np.where(found, index, 0), found
    order = np.argsort(ids, kind="stable")
    index = order[np.searchsorted(ids[order], values).clip(max=len(ids) - 1)]
    return index, ids[index] == values


# --------------------------------------------------------------------------------------------- the checking path
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
        index, found = positions(values, ids)
        unknown = np.flatnonzero(~found)
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
    areas = check.numbers("annotations", annotations, "area", "a finite number >= 0",
                          lambda v: np.isfinite(v) & (v >= 0), default=0.0)  # fmt: skip
    no_area = np.array(["area" not in a for a in annotations], bool)
    return Instances(
        file=str(file),
        category_ids=category_ids,
        names=names,
        image_ids=image_ids,
        sizes=sizes,
        files=files,
        images=images_of,
        categories=categories_of,
        boxes=boxes,
        areas=np.where(no_area, boxes[:, 2] * boxes[:, 3], areas),
        crowd=crowd.astype(bool),
        no_area=no_area,
    )
