"""Mutants of a valid COCO instances JSON: thirteen kinds of change, and stacks of them, in a fixed order per seed.

``mutants`` yields distinct variants of a seed document; mutant *i* depends only on the seed and *i*, so a sample is
a prefix of the full run. ``seed_dataset`` writes a valid seed (shapes images, polygon segmentations, an RLE crowd
region, a background image).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cspdet.files import atomic_write

SECTIONS = ("images", "annotations", "categories")
NON_ASCII = ("猫", "Ünïcödé", "café", "cafe\u0301", "🚀", "עברית", "\u200b", "Ω≈ç√", "\ud800", "ﬁ", "日本/画像")
HUGE = (1e300, 2**31, 2**53 + 1, 2**63, 2**64, 10**30, 1e18)
EXTRA_KEYS = (
    "ignore",
    "score",
    "keypoints",
    "num_keypoints",
    "segmentation",
    "attributes",
    "track_id",
    "licenses",
    "info",
    "bbox_mode",
    "ünknown",
    "",
)
EXTRA_VALUES = (1, -1, 0.5, "x", None, True, [], {}, float("nan"), [1, 2, 3], {"a": 1}, "\ud800")


@dataclass
class Mutant:
    """One mutated file.

    Args:
        index (int): Its number in the run.
        kind (str): The mutation kind (a key of ``MUTATIONS`` or 'invalid-json'), 'combo' when several were stacked.
        what (str): What was changed, in words.
        text (bytes): The file's content.
        renamed (dict): Image files to copy under a new name for this mutant: {new file_name: seed file_name}.
    """

    index: int
    kind: str
    what: str
    text: bytes
    renamed: dict = field(default_factory=dict)


def seed_dataset(folder: str | Path, images: int = 6, size: int = 64, seed: int = 0) -> Path:
    """Write a valid seed: shapes images in ``folder/images`` and ``folder/instances.json``, whose annotations carry
    polygon segmentations, one crowd region with an RLE dict and an extra background image. Returns the JSON."""
    from cspdet.data.shapes import coco_dict

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    d = coco_dict(np.random.default_rng(seed), images, size, "seed", folder / "images")
    for a in d["annotations"]:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    crowd = dict(d["annotations"][0], id=len(d["annotations"]) + 1, iscrowd=1)
    crowd["segmentation"] = {"counts": "0a1b2\\c", "size": [size, size]}
    d["annotations"].append(crowd)
    background = {"id": images + 1, "file_name": "seed_background.jpg", "width": size, "height": size}
    cv2.imwrite(str(folder / "images" / background["file_name"]), np.full((size, size, 3), 114, np.uint8))
    d["images"].append(background)
    path = folder / "instances.json"
    with atomic_write(path) as f:
        f.write(json.dumps(d))
    return path


def _records(doc, rng, sections=SECTIONS):
    """(section, index, record) of a random object record, or None."""
    choices = [
        (s, i) for s in sections if isinstance(doc.get(s), list) for i, r in enumerate(doc[s]) if isinstance(r, dict)
    ]
    if not choices:
        return None
    s, i = choices[rng.integers(len(choices))]
    return s, i, doc[s][i]


def _field(doc, rng, numeric: bool = False):
    """A random (container, key, path) of a record field, or a number inside a bbox; None if there is none."""
    picked = _records(doc, rng)
    if picked is None:
        return None
    s, i, record = picked
    keys = [k for k, v in record.items() if not numeric or _is_number(v) or k == "bbox"]
    if not keys:
        return None
    key = keys[rng.integers(len(keys))]
    if key == "bbox" and isinstance(record[key], list) and record[key] and (numeric or rng.random() < 0.5):
        j = int(rng.integers(len(record[key])))
        return record[key], j, f"{s}[{i}].bbox[{j}]"
    return record, key, f"{s}[{i}].{key}"


def _is_number(v) -> bool:
    return type(v) in (int, float)


def _pick(rng, values):
    return values[rng.integers(len(values))]


def remove_key(doc, rng, mutant):
    if rng.random() < 0.15:
        key = _pick(rng, [*SECTIONS, "info"])
        doc.pop(key, None)
        return f"removed top-level '{key}'"
    picked = _field(doc, rng)
    if picked is None:
        return "nothing to remove"
    container, key, where = picked
    del container[key]
    return f"removed {where}"


def wrong_type(doc, rng, mutant):
    picked = _field(doc, rng)
    if picked is None:
        return "no field"
    container, key, where = picked
    value = container[key]
    options = [str(value), True, False, [value], {}, None, "", "abc"]
    new = options[rng.integers(len(options))]
    container[key] = new
    return f"{where} = {new!r} (was {value!r})"


def bad_number(doc, rng, mutant):
    picked = _field(doc, rng, numeric=True)
    if picked is None:
        return "no number"
    container, key, where = picked
    value = container[key]
    magnitude = abs(value) if _is_number(value) and math.isfinite(value) and value else 1
    options = [float("nan"), float("inf"), float("-inf"), -magnitude, 0, 0.0, -0.0, 0.5, 1e-300, *HUGE, -(2**63) - 1]
    new = options[rng.integers(len(options))]
    container[key] = new
    return f"{where} = {new!r}"


def _annotation_and_image(doc, rng):
    picked = _records(doc, rng, ("annotations",))
    if picked is None:
        return None
    _, i, a = picked
    images = (
        {im.get("id"): im for im in doc.get("images", []) if isinstance(im, dict)}
        if isinstance(doc.get("images"), list)
        else {}
    )
    im = images.get(a.get("image_id"), {})
    return i, a, im.get("width", 64), im.get("height", 64)


def box_outside(doc, rng, mutant):
    picked = _annotation_and_image(doc, rng)
    if picked is None:
        return "no annotation"
    i, a, w, h = picked
    w, h = (v if _is_number(v) and math.isfinite(v) else 64 for v in (w, h))
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    options = [
        [w + 5, y, 10, 10],  # right of the image
        [-30, -30, 10, 10],  # above and left
        [x, y, 10 * w, 10 * h],  # larger than the image
        [-5, -5, w + 10, h + 10],  # covering it
        [w - 5, h - 5, 20, 20],  # partly outside
        [x, y, 0, 0],
        [x, y, 0, 5],
        [-(2**30), -(2**30), 2**30, 2**30],
    ]
    a["bbox"] = [float(v) for v in options[rng.integers(len(options))]]
    return f"annotations[{i}].bbox = {a['bbox']}"


def box_length(doc, rng, mutant):
    picked = _annotation_and_image(doc, rng)
    if picked is None:
        return "no annotation"
    i, a, _, _ = picked
    box = a.get("bbox") if isinstance(a.get("bbox"), list) else [1, 2, 3, 4]
    options = [[], box[:1], box[:2], box[:3], [*box, 1], [*box, *box], [box], {"x": 1}, "1 2 3 4", [None] * 4]
    a["bbox"] = options[rng.integers(len(options))]
    return f"annotations[{i}].bbox = {a['bbox']!r}"


def duplicate(doc, rng, mutant):
    picked = _records(doc, rng)
    if picked is None:
        return "no record"
    s, i, record = picked
    if rng.random() < 0.4:
        doc[s].append(copy.deepcopy(record))
        return f"{s}[{i}] duplicated"
    others = [j for j, r in enumerate(doc[s]) if isinstance(r, dict) and j != i]
    if not others:
        return "no other record"
    j = others[rng.integers(len(others))]
    key = "file_name" if s == "images" and rng.random() < 0.4 else "id"
    if key in doc[s][j]:
        record[key] = copy.deepcopy(doc[s][j][key])
    return f"{s}[{i}].{key} = {s}[{j}].{key}"


def unknown_id(doc, rng, mutant):
    picked = _records(doc, rng, ("annotations",))
    if picked is None:
        return "no annotation"
    _, i, a = picked
    key, section = _pick(rng, [("image_id", "images"), ("category_id", "categories")])
    ids = [r.get("id") for r in doc.get(section, []) if isinstance(r, dict) and _is_number(r.get("id"))]
    a[key] = _pick(rng, [max(ids, default=0) + 1000, -7, 0 if 0 not in ids else -1])
    return f"annotations[{i}].{key} = {a[key]} (not in '{section}')"


def empty_section(doc, rng, mutant):
    what = []
    for section in SECTIONS:
        if rng.random() < 0.5 or (section == SECTIONS[-1] and not what):
            new = _pick(rng, [[], None, {}, "x", 0, "missing"])
            if new == "missing":
                doc.pop(section, None)
            else:
                doc[section] = new
            what.append(f"'{section}' {'removed' if new == 'missing' else f'= {new!r}'}")
    return ", ".join(what)


def non_ascii(doc, rng, mutant):
    text = _pick(rng, NON_ASCII)
    where = rng.integers(3)
    if where == 0:
        picked = _records(doc, rng, ("images",))
        if picked and isinstance(picked[2].get("file_name"), str):
            _, i, im = picked
            old = im["file_name"]
            im["file_name"] = f"{text}_{old}" if rng.random() < 0.5 else f"{text}/{old}"
            if "\ud800" not in text:
                mutant.renamed[im["file_name"]] = old
            return f"images[{i}].file_name = {im['file_name']!r} (image copied)"
    picked = _records(doc, rng, ("categories",))
    if where == 1 and picked:
        _, i, c = picked
        c["name"] = text
        return f"categories[{i}].name = {text!r}"
    doc["info"] = {"description": text, text: text}
    return f"info = {doc['info']!r}"


def extra_keys(doc, rng, mutant):
    key, value = _pick(rng, EXTRA_KEYS), copy.deepcopy(_pick(rng, EXTRA_VALUES))
    picked = _records(doc, rng) if rng.random() < 0.8 else None
    if picked is None:
        if key not in SECTIONS:
            doc[key] = value
        return f"top-level {key!r} = {value!r}"
    s, i, record = picked
    if key in ("segmentation", "ignore", "score", "keypoints", "num_keypoints") or key not in record:
        record[key] = value
    return f"{s}[{i}].{key!r} = {value!r}"


def path_escape(doc, rng, mutant):
    what = []
    for _ in range(int(rng.integers(1, 3))):
        picked = _records(doc, rng, ("images",))
        if picked is None:
            return "no image"
        _, i, im = picked
        old = im.get("file_name") if isinstance(im.get("file_name"), str) else "x.jpg"
        options = ["../{}", "/tmp/{}", "a/../../{}", "C:\\{}", "..\\{}", "//server/{}", "./{}", "sub/../{}", "{}/",
                   "{}\0", ".", "", "images/../../{}", "~/{}", "{}/..", "./../{}"]  # fmt: skip
        im["file_name"] = _pick(rng, options).format(old)
        what.append(f"images[{i}].file_name = {im['file_name']!r}")
    return ", ".join(what)


def record_type(doc, rng, mutant):
    picked = _records(doc, rng)
    if picked is None:
        return "no record"
    s, i, record = picked
    doc[s][i] = _pick(rng, [[], "x", 1, None, True, [record]])
    return f"{s}[{i}] = {doc[s][i]!r}"[:120]


MUTATIONS = {
    "remove-key": remove_key,
    "wrong-type": wrong_type,
    "bad-number": bad_number,
    "box-outside": box_outside,
    "box-length": box_length,
    "duplicate": duplicate,
    "unknown-id": unknown_id,
    "empty-section": empty_section,
    "non-ascii": non_ascii,
    "extra-keys": extra_keys,
    "path-escape": path_escape,
    "record-type": record_type,
}
KINDS = (*MUTATIONS, "invalid-json", "combo")


def invalid_json(text: bytes, rng) -> tuple[bytes, str]:
    """Break (or reencode) the JSON text itself."""
    n = len(text)
    k = int(rng.integers(max(n, 1)))
    options = {
        "truncated": lambda: text[:k],
        "byte deleted": lambda: text[:k] + text[k + 1 :],
        "byte inserted": lambda: text[:k] + bytes([_pick(rng, b'{}[],:"\\x')]) + text[k:],
        "invalid UTF-8": lambda: text[:k] + b"\xff\xfe" + text[k:],
        "UTF-8 BOM": lambda: b"\xef\xbb\xbf" + text,
        "UTF-16": lambda: text.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass"),
        "empty file": lambda: b"",
        "trailing comma": lambda: text[:-1] + b",}",
        "single quotes": lambda: text.replace(b'"', b"'", 4),
        "5000-digit number": lambda: re.sub(rb'("width": )\d+', rb"\g<1>" + b"7" * 5000, text, count=1),
        "nested 100000 deep": lambda: text[:-1] + b', "deep": ' + b"[" * 100000 + b"]" * 100000 + b"}",
        "comment": lambda: b"// exported\n" + text,
        "duplicate key": lambda: b'{"images": [], ' + text[1:],
        "NaN literal": lambda: re.sub(rb'("area": )[-0-9.e]+', rb"\g<1>NaN", text, count=1),
    }
    name = _pick(rng, sorted(options))
    return options[name](), name


def mutate(seed_doc: dict, index: int, seed: int = 0, attempt: int = 0, kind: str | None = None) -> Mutant:
    """Mutant ``index`` of ``seed_doc``: kind ``KINDS[index % len(KINDS)]`` unless given, random choices seeded by
    (seed, index, attempt)."""
    rng = np.random.default_rng([seed, index, attempt])
    kind = kind or KINDS[index % len(KINDS)]
    doc = copy.deepcopy(seed_doc)
    mutant = Mutant(index, kind, "", b"")
    if kind == "invalid-json":
        steps = []
    elif kind == "combo":
        steps = [_pick(rng, sorted(MUTATIONS)) for _ in range(int(rng.integers(2, 4)))]
    else:
        steps = [kind]
    what = [f"{step}: {MUTATIONS[step](doc, rng, mutant)}" for step in steps]
    text = json.dumps(doc, ensure_ascii=bool(rng.random() < 0.5), allow_nan=True).encode("utf-8", "surrogatepass")
    if kind == "invalid-json" or (kind == "combo" and rng.random() < 0.2):
        text, name = invalid_json(text, rng)
        what.append(f"invalid-json: {name}")
    mutant.what, mutant.text = "; ".join(what), text
    return mutant


def mutants(seed_doc: dict, seed: int = 0):
    """Endless distinct mutants of ``seed_doc``; a kind that makes no new file in 20 attempts gives way to 'combo'."""
    seen = set()
    for index in itertools.count():
        for attempt in itertools.count():
            mutant = mutate(seed_doc, index, seed, attempt, None if attempt < 20 else "combo")
            digest = hashlib.sha256(mutant.text).digest()
            if digest not in seen:
                seen.add(digest)
                yield mutant
                break
