"""Mutation fuzzing of COCO instances JSON through cspdet's training parser, its scorer and the ultralytics trainer.

From one valid file, ``mutants`` makes distinct variants of it in a fixed order for a seed (so a sample is a prefix of
the full run). Each mutant must end in one of two ways:

- it works: training (``load_coco``) and scoring (``load_annotations``) both accept it, cspdet's scores equal
  pycocotools' on the same file and predictions, the scorer counts as instances exactly the boxes that training keeps
  or drops, and the split's images map to the file's ids; with ``train=True`` it also trains one step with the real
  ultralytics trainer and cspdet's dataset, and the final validation scores it like pycocotools;
- it is rejected: both raise the same CocoFormatError, which names the file and the field, before any training step,
  and no cache file is left behind.

Anything else is a finding: a traceback from a library, a failure once training began, training and scoring that
disagree, or scores that differ from pycocotools'.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import itertools
import json
import logging
import math
import re
import shutil
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from ultralytics.utils import LOGGER, TQDM

from cspdet.data.coco import cache_path, load_coco
from cspdet.data.coco_format import CocoFormatError
from cspdet.eval.coco import METRIC_KEYS, evaluate, load_annotations
from cspdet.eval.results import CocoResults
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
VERDICTS = ("works", "rejected", "stopped", "crash", "disagree", "unnamed", "inconsistent", "after-training")
FINDINGS = VERDICTS[3:]


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


@dataclass
class Outcome:
    """How a mutant ended: a verdict of VERDICTS and, for a rejection or a finding, the message or traceback."""

    mutant: Mutant
    verdict: str
    detail: str = ""


# ---------------------------------------------------------------------------------------------------- the seed file


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


# ------------------------------------------------------------------------------------------------ mutation engine


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


# ------------------------------------------------------------------------------------------------------ the checks


def _pycocotools(dataset: dict, predictions: list, image_ids=None) -> np.ndarray:
    """pycocotools' 12 numbers for box predictions on a (checked, area-filled) dataset, on ``image_ids`` if given."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        gt.dataset = copy.deepcopy(dataset)
        for a in gt.dataset["annotations"]:
            a.setdefault("iscrowd", 0)
        gt.createIndex()
        results = [dict(p, id=k, area=p["bbox"][2] * p["bbox"][3], iscrowd=0) for k, p in enumerate(predictions, 1)]
        dt.dataset = {"images": dataset["images"], "categories": dataset["categories"], "annotations": results}
        dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.array(evaluator.stats[:12])


def _predictions(dataset: dict, rng) -> list[dict]:
    """Detections for a dataset: most ground-truth boxes slightly moved, plus false positives, random scores."""
    predictions = []
    categories = [c["id"] for c in dataset["categories"]]
    for a in dataset["annotations"]:
        if a.get("iscrowd") or rng.random() < 0.2:
            continue
        x, y, w, h = a["bbox"]
        jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
        box = [float(v) for v in (x + jitter[0], y + jitter[1], abs(w + jitter[2]), abs(h + jitter[3]))]
        predictions.append(
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": box, "score": float(rng.random())}
        )
    for im in dataset["images"]:
        for _ in range(int(rng.integers(3))):
            w, h = float(im["width"]), float(im["height"])
            box = [float(v) for v in (*rng.uniform(0, (w, h)), *rng.uniform(1, (w / 2 + 1, h / 2 + 1)))]
            predictions.append(
                {"image_id": im["id"], "category_id": _pick(rng, categories), "bbox": box, "score": float(rng.random())}
            )
    return predictions


def _agree_with_pycocotools(dataset: dict, predictions: list, metrics: dict, image_ids=None) -> str:
    """'' when cspdet's 12 numbers equal pycocotools' on the same input, else what differs."""
    reference = _pycocotools(dataset, predictions, image_ids)
    ours = np.array([metrics[k] for k in METRIC_KEYS])
    if np.allclose(ours, reference, rtol=0, atol=1e-4):
        return ""
    return f"scores differ from pycocotools: {ours.round(4).tolist()} vs {reference.round(4).tolist()}"


def _names_file_and_field(message: str, path: Path) -> bool:
    return message.startswith(f"{path}: ") and bool(
        re.search(r"'[^']+'|\w+\[\d+\]|invalid JSON", message[len(str(path)) :])
    )


def _error(call):
    """(result, None) or (None, exception) of ``call()``."""
    try:
        return call(), None
    except Exception as e:
        return None, e


def check_parse_and_score(mutant: Mutant, folder: Path, image_dir: Path) -> Outcome:
    """Parse ``mutant`` for training and for scoring; score it if both accept it (see the module docstring)."""
    path = folder / "instances.json"
    cache_path(path).unlink(missing_ok=True)
    path.write_bytes(mutant.text)
    index, train_error = _error(lambda: load_coco(path))
    gt, score_error = _error(lambda: load_annotations(path))
    for error in (train_error, score_error):
        if error is not None and not isinstance(error, CocoFormatError):
            return Outcome(mutant, "crash", "".join(traceback.format_exception(error)))
    if (train_error is None) != (score_error is None) or str(train_error) != str(score_error):
        return Outcome(mutant, "disagree", f"training: {train_error}\nscoring: {score_error}")
    if train_error is not None:
        message = str(train_error)
        if cache_path(path).exists():
            return Outcome(mutant, "inconsistent", f"a cache was written for a rejected file: {message}")
        return Outcome(mutant, "rejected" if _names_file_and_field(message, path) else "unnamed", message)
    try:
        rng = np.random.default_rng([mutant.index, 1])
        predictions = _predictions(gt.dataset, rng)
        metrics = evaluate(gt, copy.deepcopy(predictions), name="predictions")
        problem = _agree_with_pycocotools(gt.dataset, predictions, metrics)
        instances = sum(c["instances"] for c in metrics["per_class"])
        if not problem and instances != index.counts["boxes"] + index.counts["dropped"]:
            problem = (
                f"{instances} instances scored, training kept {index.counts['boxes']} and dropped "
                f"{index.counts['dropped']}"
            )
        results = CocoResults(path, image_dir, [str(image_dir / f) for f in index.files.tolist()])
        if not problem and sorted(results.image_ids.values()) != sorted(index.image_ids.tolist()):
            problem = "the split's images do not map to the file's image ids"
    except Exception as e:
        return Outcome(mutant, "crash", "".join(traceback.format_exception(e)))
    return Outcome(mutant, "inconsistent" if problem else "works", problem)


def _training_input(index) -> tuple:
    """What the trainer and the validator read of a parsed file: mutants with equal inputs train alike."""
    return tuple(
        np.asarray(getattr(index, k)).tobytes()
        for k in ("names", "category_ids", "image_ids", "files", "sizes", "cls", "boxes", "offsets")
    ) + (tuple(sorted(index.counts.items())),)


def check_training(mutant: Mutant, folder: Path, seed_images: Path, model: str = "csp_wrc-n.yaml") -> Outcome:
    """Train one step on ``mutant`` (train and val split) with ultralytics' trainer and cspdet's dataset, then check
    that the final validation scored it like pycocotools does."""
    from ultralytics import YOLO

    folder = Path(folder).resolve()  # ultralytics puts a relative project under its runs folder
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(seed_images, folder / "images")
    for new, old in mutant.renamed.items():
        target = folder / "images" / new
        if target.resolve().is_relative_to((folder / "images").resolve()):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(seed_images / old, target)
    path = folder / "instances.json"
    path.write_bytes(mutant.text)
    (folder / "data.yaml").write_text(
        json.dumps(
            {
                "path": str(folder),
                "train": "images",
                "val": "images",
                "annotations": {"train": path.name, "val": path.name},
            }
        )
    )
    started = []
    output = io.StringIO()
    try:
        yolo = YOLO(model)
        yolo.add_callback("on_train_batch_start", lambda trainer: started.append(trainer.epoch))
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            yolo.train(
                data=str(folder / "data.yaml"),
                epochs=1,
                imgsz=64,
                batch=16,
                workers=0,
                device="cpu",
                plots=False,
                amp=False,
                project=str(folder),
                name="run",
                exist_ok=True,
                verbose=False,
                seed=0,
            )
    except Exception as e:
        detail = "".join(traceback.format_exception(e))
        if started:
            return Outcome(mutant, "after-training", detail)
        named = str(path) in str(e) or isinstance(e, CocoFormatError)
        return Outcome(mutant, "stopped" if named else "crash", str(e) if named else detail)
    run = folder / "run"
    if not (run / "coco_metrics.json").is_file():
        return Outcome(mutant, "inconsistent", "the final validation wrote no coco_metrics.json")
    metrics = json.loads((run / "coco_metrics.json").read_text())
    predictions = json.loads((run / "predictions.json").read_text())
    dataset = load_annotations(path).dataset
    read = [im["id"] for im in dataset["images"] if (folder / "images" / im["file_name"]).is_file()]  # the scored
    problem = _agree_with_pycocotools(dataset, predictions, metrics, read)
    return Outcome(mutant, "inconsistent" if problem else "works", problem)


@dataclass
class FuzzReport:
    """Outcomes of a run, by mutation kind; ``trained``: distinct training inputs trained (None: parsing and scoring
    only)."""

    outcomes: list
    trained: int | None = None

    def counts(self) -> dict:
        """{kind: Counter of verdicts}, plus 'all'."""
        table = {kind: Counter() for kind in KINDS}
        for o in self.outcomes:
            table[o.mutant.kind][o.verdict] += 1
        table["all"] = sum(table.values(), Counter())
        return table

    def findings(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict in FINDINGS]

    def errors(self, top: int = 12) -> list[tuple[str, int]]:
        """The most frequent rejection messages, with the file, record numbers, ids and values generalised."""
        generalise = [
            (r"^.*?: ", ""),
            (r"\[\d+\]", "[i]"),
            (r" \(id [^)]*\)", ""),
            (r", got .*$", ""),
            (r"'(\w+)' \S+ is not in", r"'\1' ... is not in"),
            (r"'(\w+)' .* is a duplicate of", r"'\1' ... is a duplicate of"),
            (r" \(\d+ of \d+ annotations\)", ""),
            (r"line \d+ column \d+ \(char \d+\)", "line L column C"),
        ]
        messages = []
        for o in self.outcomes:
            if o.verdict == "rejected":
                message = o.detail
                for pattern, replacement in generalise:
                    message = re.sub(pattern, replacement, message)
                messages.append(message)
        return Counter(messages).most_common(top)


def run_fuzz(
    seed_json: str | Path,
    image_dir: str | Path,
    count: int = 2000,
    seed: int = 0,
    train: bool = False,
    folder: str | Path = "fuzz",
) -> FuzzReport:
    """Check ``count`` mutants of ``seed_json`` (whose images are in ``image_dir``); see the module docstring.

    Args:
        seed_json (str | Path): A valid COCO instances JSON.
        image_dir (str | Path): Its images.
        count (int): How many mutants.
        seed (int): Seed of the mutations.
        train (bool): Also train one step on every mutant that passes, once per distinct training input.
        folder (str | Path): Working folder (emptied first).

    Returns:
        (FuzzReport): Every mutant's outcome.

    Raises:
        CocoFormatError: The seed file itself is invalid.
    """
    seed_json, image_dir, folder = Path(seed_json), Path(image_dir).resolve(), Path(folder).resolve()
    load_annotations(seed_json)  # the seed must be valid
    stream = mutants(json.loads(seed_json.read_bytes()), seed)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "parse").mkdir(parents=True)
    outcomes, trained = [], {}
    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        for mutant in TQDM(itertools.islice(stream, count), total=count, desc=f"Fuzzing {seed_json.name}"):
            outcome = check_parse_and_score(mutant, folder / "parse", image_dir)
            if train and outcome.verdict == "works":
                key = (_training_input(load_coco(folder / "parse" / "instances.json")), tuple(mutant.renamed.items()))
                if key not in trained:
                    trained[key] = check_training(mutant, folder / "train", image_dir)
                outcome = Outcome(mutant, trained[key].verdict, trained[key].detail)
            outcomes.append(outcome)
    finally:
        LOGGER.setLevel(level)
    return FuzzReport(outcomes, len(trained) if train else None)


def fuzz_tables(report: FuzzReport) -> str:
    """The report as markdown: outcomes per mutation kind, the most frequent rejections and every finding."""
    from cspdet.research.report import markdown_table

    counts = report.counts()
    rows = [
        [kind, sum(c.values()), c["works"], c["rejected"], c["stopped"], sum(c[v] for v in FINDINGS)]
        for kind, c in counts.items()
    ]
    rows[-1] = [f"**{v}**" for v in rows[-1]]
    lines = [
        "Each mutant was parsed for training and for scoring, and scored against pycocotools"
        + (
            f"; each that passed also trained one step and was scored by the final validation ({report.trained} "
            "distinct training inputs)."
            if report.trained is not None
            else "."
        ),
        "",
        markdown_table(
            ["mutation", "mutants", "work", "rejected, naming file and field", "stopped before training", "findings"],
            rows,
        ),
        "",
        "Most frequent rejections (record numbers, ids and values left out):",
        "",
        markdown_table(["error", "mutants"], [[f"`{e}`", n] for e, n in report.errors()]),
    ]
    findings = report.findings()
    if findings:
        lines += ["", f"Findings ({len(findings)}):", ""]
        rows = [
            [
                o.mutant.index,
                o.mutant.kind,
                o.verdict,
                f"`{o.mutant.what[:100]}`",
                f"`{(o.detail.strip().splitlines() or [''])[-1][:160]}`",
            ]
            for o in findings[:30]
        ]
        lines.append(markdown_table(["mutant", "kind", "verdict", "mutation", "error"], rows))
    return "\n".join(lines).encode("utf-8", "backslashreplace").decode()  # mutations may hold lone surrogates
