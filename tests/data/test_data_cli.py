"""The stock `yolo` CLI trains on a COCO-format data YAML with an albumentations pipeline YAML from the command line."""

import yaml
from helpers import yolo
from helpers.coco_files import write_coco_dataset

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
