"""Official COCO metrics from the stock `yolo` CLI on a COCO-format data YAML: after training and in `yolo val`."""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import yolo
from helpers.coco_cases import write_coco_dataset

from cspdet.eval import METRIC_KEYS
from cspdet.eval.reference import pycocotools_scores

pytestmark = pytest.mark.compat("COCO")

CPU = ["device=cpu", "workers=0", "imgsz=64", "batch=4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train one epoch on the COCO-format dataset with the stock CLI; return (run dir, data YAML, train output).

    The JSONs have no 'area' (optional for many exporters): training and the final scoring take the box's."""
    data = write_coco_dataset(tmp_path_factory.mktemp("coco"))
    for split in ("train", "val"):
        path = data.parent / "annotations" / f"instances_{split}.json"
        coco = json.loads(path.read_text())
        for a in coco["annotations"]:
            del a["area"]
        path.write_text(json.dumps(coco))
    project = tmp_path_factory.mktemp("runs")
    args = ["model=csp_wrc-n.yaml", f"data={data}", "epochs=1", f"project={project}", "name=train", "plots=False", *CPU]
    out = yolo("train", *args, cwd=project)
    return project / "train", data, out.stdout + out.stderr


def check_run(run_dir: Path, data: Path, output: str):
    """The run printed both tables and wrote COCO files that pycocotools scores the same."""
    annotations = json.loads((data.parent / "annotations" / "instances_val.json").read_text())
    assert "all" in output and "COCO metrics" in output and "".join(f"{k:>7}" for k in METRIC_KEYS) in output
    predictions = json.loads((run_dir / "predictions.json").read_text())
    metrics = json.loads((run_dir / "coco_metrics.json").read_text())
    assert predictions and {p["image_id"] for p in predictions} <= {im["id"] for im in annotations["images"]}
    assert {p["category_id"] for p in predictions} <= {3, 11}
    assert max(np.unique([p["image_id"] for p in predictions], return_counts=True)[1]) <= 100
    reference, per_class = pycocotools_scores(annotations, predictions)
    assert [metrics[k] for k in METRIC_KEYS] == reference.tolist()  # to the last bit
    assert [(c["id"], c["name"], c["instances"]) for c in metrics["per_class"]] == [(3, "red", 4), (11, "blue", 4)]
    assert {c["id"]: c["AP"] for c in metrics["per_class"]} == per_class


def test_training_reports_coco_metrics_of_best(trained):
    run_dir, data, output = trained
    check_run(run_dir, data, output)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)  # without colorstr's colours
    assert plain.count("COCO metrics of ") == 1  # the table: only the validation of best.pt
    assert plain.count("COCO metrics: AP ") == 1  # one line per epoch (1 epoch)
    assert "instances_train.json: 8 images, 16 boxes," in output and "19 without 'area' (taken from the box)" in output


def biased_checkpoint(best: Path, path: Path) -> Path:
    """Copy of ``best`` whose head is sure of class 0 and doubts class 1 everywhere, so that a wrong mapping of
    classes to category ids shows (the 1-epoch model alone scores both classes alike)."""
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    for branch in checkpoint["model"].model[-1].cv3:
        branch[-1].bias.data = torch.tensor([4.0, -4.0], dtype=branch[-1].bias.dtype)
    torch.save(checkpoint, path)
    return path


def test_yolo_val_reports_coco_metrics(trained, tmp_path):
    run_dir, data, _ = trained
    model = biased_checkpoint(run_dir / "weights" / "best.pt", tmp_path / "biased.pt")
    args = [f"model={model}", f"data={data}", f"project={tmp_path}", "name=val", *CPU]
    out = yolo("val", *args, "save_json=True", "save_txt=True", "save_conf=True", "max_det=100", cwd=tmp_path)
    check_run(tmp_path / "val", data, out.stdout + out.stderr)
    annotations = json.loads((data.parent / "annotations" / "instances_val.json").read_text())
    predictions = json.loads((tmp_path / "val" / "predictions.json").read_text())
    scores = {c: [p["score"] for p in predictions if p["category_id"] == c] for c in (3, 11)}
    assert min(scores[3]) > 0.5 > max(scores[11])  # class 0 is category 3
    # predictions.json holds the detections that ultralytics' save_txt writes, under the JSON's ids, in pixels
    stems = Counter(Path(image["file_name"]).stem for image in annotations["images"])
    for image in annotations["images"]:
        txt = tmp_path / "val" / "labels" / image["file_name"].replace("/", "_").replace(".png", ".txt")
        if not txt.exists():  # older releases name save_txt labels by the stem alone
            if stems[Path(image["file_name"]).stem] > 1:
                continue  # images of the same stem in other folders overwrote each other's labels there
            txt = txt.with_name(Path(image["file_name"]).stem + ".txt")
        theirs = np.loadtxt(txt, ndmin=2)  # class, normalised xywh (centre), conf
        ours = np.array(
            [[p["category_id"], *p["bbox"], p["score"]] for p in predictions if p["image_id"] == image["id"]]
        )
        assert len(ours) == len(theirs) > 0
        xywh = theirs[:, 1:5] * ([image["width"], image["height"]] * 2)
        xywh[:, :2] -= xywh[:, 2:] / 2
        expected = np.concatenate([np.array([3, 11])[theirs[:, :1].astype(int)], xywh, theirs[:, 5:]], 1)
        tolerance = np.array([0.5, 2e-3, 2e-3, 2e-3, 2e-3, 2e-5])  # category, box (px), score: within rounding
        distance = (np.abs(ours[:, None] - expected[None]) / tolerance).max(2)
        assert distance.min(1).max() < 1 and distance.min(0).max() < 1  # every detection has its twin
