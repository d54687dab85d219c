"""What each mutant must do: train and score like pycocotools, or be rejected by one error naming the file and field.

- it works: training (``load_coco``) and scoring (``load_annotations``) both accept it, cspdet's 12 numbers equal
  pycocotools' on the same file and predictions (``cspdet.eval.reference``), the scorer counts as instances exactly
  the boxes that training keeps or drops, and the split's images map to the file's ids; ``check_training`` also
  trains one step with the real ultralytics trainer and cspdet's dataset, and the final validation scores it like
  pycocotools;
- it is rejected: both raise the same CocoFormatError, which names the file and the field, before any training step,
  and no cache file is left behind; or the trainer stops before the first step with an error naming the file.

Anything else is a finding: a traceback from a library, a failure once training began, training and scoring that
disagree, or scores that differ from pycocotools'.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cspdet.data.coco import cache_path, load_coco
from cspdet.data.coco_format import CocoFormatError
from cspdet.eval.coco import METRIC_KEYS, evaluate, load_annotations
from cspdet.eval.reference import pycocotools_scores
from cspdet.eval.results import CocoResults
from tools.fuzz.mutations import Mutant

VERDICTS = ("works", "rejected", "stopped", "crash", "disagree", "unnamed", "inconsistent", "after-training")
FINDINGS = VERDICTS[3:]


@dataclass
class Outcome:
    """How a mutant ended: a verdict of VERDICTS and, for a rejection or a finding, the message or traceback."""

    mutant: Mutant
    verdict: str
    detail: str = ""


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
            category, score = categories[rng.integers(len(categories))], float(rng.random())
            predictions.append({"image_id": im["id"], "category_id": category, "bbox": box, "score": score})
    return predictions


def _agree_with_pycocotools(path: Path, predictions: list, metrics: dict, image_ids=None) -> str:
    """'' when cspdet's 12 numbers equal pycocotools' on the file as JSON parses it and the same predictions."""
    reference, _ = pycocotools_scores(json.loads(path.read_bytes()), predictions, image_ids)
    ours = np.array([metrics[k] for k in METRIC_KEYS])
    if np.array_equal(ours, reference):
        return ""
    return f"scores differ from pycocotools by up to {np.abs(ours - reference).max():.1e}: {ours.tolist()} vs " + str(
        reference.tolist()
    )


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
        problem = _agree_with_pycocotools(path, predictions, metrics)
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


def training_input(index) -> tuple:
    """What the trainer and the validator read of a parsed file: mutants with equal inputs train alike."""
    return tuple(
        np.asarray(getattr(index, k)).tobytes()
        for k in ("names", "category_ids", "image_ids", "files", "sizes", "cls", "boxes", "offsets")
    ) + (tuple(sorted(index.counts.items())),)


def _without_loggers(trainer):
    """Drop the integrations that ultralytics adds to a trainer (MLflow, TensorBoard, W&B, ...): one-step trainings
    are logged nowhere (MLflow would write its store into the working directory)."""
    for event, functions in trainer.callbacks.items():
        trainer.callbacks[event] = [f for f in functions if not _integration(f.__module__)]


def _integration(module: str) -> bool:
    return module.startswith("ultralytics.utils.callbacks.") and module != "ultralytics.utils.callbacks.base"


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
        yolo.add_callback("on_pretrain_routine_start", _without_loggers)
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
    gt = load_annotations(path)
    read = [i for i, file in zip(gt.image_ids.tolist(), gt.files) if (folder / "images" / file).is_file()]  # scored
    problem = _agree_with_pycocotools(path, predictions, metrics, read)
    return Outcome(mutant, "inconsistent" if problem else "works", problem)
