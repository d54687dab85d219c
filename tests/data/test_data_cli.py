"""The stock `yolo` CLI trains on a COCO-format data YAML with an albumentations pipeline YAML from the command line."""

import json

import yaml
from helpers import yolo
from helpers.coco_files import tree, write_coco_dataset, write_one_folder_dataset

from cspdet.data import find_bundled


def test_yolo_train_on_coco_json(tmp_path):
    data = write_coco_dataset(tmp_path / "coco")
    pipeline = find_bundled("augment/default.yaml")
    args = ["model=csp_wrc-n.yaml", f"data={data}", "imgsz=64", "epochs=1", "batch=4", "device=cpu", "plots=False"]
    result = yolo("train", *args, f"augmentations={pipeline}", f"project={tmp_path}", "name=run", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert "instances_train.json: 8 images, 14 boxes, 0 crowd (not targets)" in output
    assert "instances_val.json: 4 images" in output and "RandomRotate90(p=0.5" in output
    assert (tmp_path / "run" / "weights" / "best.pt").is_file()
    saved = yaml.safe_load((tmp_path / "run" / "args.yaml").read_text())
    assert [a["transform"]["__class_fullname__"] for a in saved["augmentations"]][:2] == [
        "RandomRotate90",
        "VerticalFlip",
    ]


def test_bad_pipeline_fails_before_training(tmp_path):
    data = write_coco_dataset(tmp_path / "coco", n_train=2, n_val=1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("transforms:\n  - RandomRotate90: {p: 0.5}\n  - GaussianBlurr: {p: 0.1}\n")
    result = yolo("train", "model=csp_wrc-n.yaml", f"data={data}", "imgsz=64", "epochs=1", f"augmentations={bad}",
                  f"project={tmp_path}", "name=run", cwd=tmp_path, check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{bad}: transforms[1]: 'GaussianBlurr' is not an albumentations" in output and "GaussianBlur" in output
    assert "Starting training" not in output and not (tmp_path / "run" / "weights").exists()


def test_yolo_trains_and_scores_on_a_read_only_one_folder_dataset(tmp_path):
    """The stock CLI on a read-only dataset whose splits share one folder: validation and the final COCO scoring
    use exactly the val JSON's images, and nothing is written into the dataset."""
    root = tmp_path / "data"
    data_yaml = write_one_folder_dataset(root)
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    before = tree(root)
    try:
        result = yolo(
            "train", "model=csp_wrc-n.yaml", f"data={data_yaml}", "epochs=1", "imgsz=64", "batch=4", "workers=0",
            "plots=False", f"project={tmp_path}", "name=run", env={"CSPDET_CACHE_DIR": str(tmp_path / "cache")},
        )  # fmt: skip
    finally:
        after = tree(root)
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    assert after == before
    log = result.stdout + result.stderr
    assert "'val' split, instances_val.json: 3 images, 6 boxes" in log and "'train' split" in log
    run = tmp_path / "run"
    val_ids = {i["id"] for i in json.loads((root / "annotations" / "instances_val.json").read_text())["images"]}
    assert {p["image_id"] for p in json.loads((run / "predictions.json").read_text())} <= val_ids
    assert json.loads((run / "coco_metrics.json").read_text())["AP"] >= 0
    assert "coco/AP" in (run / "results.csv").read_text().splitlines()[0]
