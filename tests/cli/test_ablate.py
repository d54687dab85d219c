"""`cspdet ablate` as a user runs it: real trainings, the report with paired differences, and its plots."""

import json
from pathlib import Path

import pytest
from helpers import REPO, cspdet
from helpers.coco_files import write_coco_dataset


def test_ablate_trains_reports_and_resumes(tmp_path, tiny_dataset):
    out, doc = tmp_path / "ablation", tmp_path / "docs" / "results.md"
    args = ["--variants", "csp-channel", "--seeds", "0", "1", "--epochs", "2", "--imgsz", "64", "--batch", "4"]
    args += ["--data", str(tiny_dataset), "--out", str(out), "--doc", str(doc)]
    cspdet("ablate", *args, timeout=900)
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["variant"], r["seed"]) for r in records) == [
        ("csp-channel", 0), ("csp-channel", 1), ("csp-plain", 0), ("csp-plain", 1)  # the baseline is added
    ]  # fmt: skip
    assert all(r["cpu_s"] > 0 and len(r["curves"]["mAP50-95"]) == 2 for r in records)
    text = doc.read_text()
    assert "### csp-plain and its weighted twins" in text and "`cspdet ablate --variants csp-channel" in text
    assert "| csp-channel | 2 |" in text  # two pairs, one row of paired differences
    for png in ("ablation_csp-plain.png", "ablation_csp-plain_delta.png", "wrc_weights_csp-channel.png"):
        assert (doc.parent / "img" / png).read_bytes()[:4] == b"\x89PNG" and f"img/{png}" in text
    again = cspdet("ablate", *args, "--report")  # nothing retrains
    assert "ablation runs" not in again.stderr and [json.loads(x) for x in (out / "runs.jsonl").open()] == records


def test_unknown_variant_and_empty_report(tmp_path):
    unknown = cspdet("ablate", "--variants", "yolo11-rezro", "--out", str(tmp_path), check=False)
    assert unknown.returncode == 1 and "unknown variant(s) yolo11-rezro; choose from yolo11n" in unknown.stderr
    empty = cspdet("ablate", "--report", "--out", str(tmp_path), check=False)
    assert empty.returncode == 1 and f"{tmp_path / 'runs.jsonl'}: no runs recorded" in empty.stderr


WEIGHTS = REPO.parent / "shared" / "data" / "weights" / "yolov5n-coco.pt"  # COCO-pretrained YOLOv5n (its SOURCE.md)


@pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"{WEIGHTS} not found")
def test_ablate_from_a_pretrained_checkpoint_with_a_rerun(tmp_path):
    """Both models start from the checkpoint, the report says which tensors came from it, the COCO AP is the metric
    of COCO-format data, and the rerun of a seed reproduces its first run."""
    data = write_coco_dataset(tmp_path / "coco")
    out, doc = tmp_path / "ablation", tmp_path / "results.md"
    args = ["--variants", "yolov5-channel", "--seeds", "0", "--epochs", "2", "--imgsz", "64", "--batch", "4"]
    args += ["--data", str(data), "--pretrained", str(WEIGHTS), "--rerun", "0", "--checkpoints", "1"]
    cspdet("ablate", *args, "--out", str(out), "--doc", str(doc), "--section", "coco-pretrained", timeout=900)
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["variant"], r.get("attempt", 1)) for r in records] == [
        ("yolov5n", 1), ("yolov5-channel", 1), ("yolov5n", 2), ("yolov5-channel", 2)
    ]  # fmt: skip
    # ultralytics' own count: everything but alpha/beta; the class outputs (3 classes here, 80 in the checkpoint) come
    # by class name, as cat, dog and zebra are COCO classes too
    assert [(r["transferred"], r["remapped"]) for r in records[:2]] == [([427, 427], [3, 3]), ([427, 441], [3, 3])]
    assert all(Path(r["budget"]["pretrained"]) == WEIGHTS.resolve() for r in records)  # recorded resolved
    text = doc.read_text()
    assert "<!-- coco-pretrained:start -->" in text and "(data, fine-tuned from yolov5n-coco.pt)" in text
    assert "every variant starts from the same checkpoint, `yolov5n-coco.pt`" in text
    transfer = (
        "- `yolov5n`: 421 of its 427 tensors from `yolov5n-coco.pt` (layers 0-23: 342 of 342; layer 24: 79 of 85)"
    )
    assert transfer in text
    assert "`model.24.cv3.*.2.weight` x3" in text and "`model.*.m.*.wrc.alpha` x7" in text
    assert "then ultralytics copied the class-output rows of 3 of the 3 classes by name" in text
    assert "| yolov5n | 1 | " in text and "COCO AP epoch 1" in text and "COCO AP final (epoch 2)" in text
    assert "| yolov5-channel-s0-r2 | +0.0000 | +0.0000 | 0.0000 |" in text
    assert "reproduce their first runs exactly" in text
    assert (tmp_path / "img" / "ablation_coco-pretrained_yolov5n.png").is_file()


def test_a_missing_checkpoint_or_metric_fails_before_training(tmp_path):
    missing = cspdet("ablate", "--pretrained", str(tmp_path / "none.pt"), "--out", str(tmp_path), check=False)
    assert missing.returncode == 1 and f"--pretrained {tmp_path / 'none.pt'}: no such checkpoint" in missing.stderr
    metric = cspdet("ablate", "--metric", "AP", "--out", str(tmp_path), check=False)
    assert metric.returncode == 1 and "--metric AP: choose from mAP50-95, mAP50, COCO AP, COCO AP50" in metric.stderr
    assert not (tmp_path / "runs.jsonl").exists()
