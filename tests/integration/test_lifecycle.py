"""The whole life of a cspdet model in fresh processes of the stock `yolo` CLI: train, val, predict, export, resume."""

import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run, yolo

from cspdet.integration.compat import upstream_features

CPU = ["device=cpu", "workers=0", "imgsz=64", "batch=4"]


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """Train csp_wrc-n for one epoch with the stock CLI; return (run dir, data YAML)."""
    project = tmp_path_factory.mktemp("runs")
    out = yolo(
        "train",
        "model=csp_wrc-n.yaml",
        f"data={tiny_dataset}",
        "epochs=1",
        f"project={project}",
        "name=train",
        *CPU,
        cwd=project,
    )
    assert "cspdet.nn.stages.C3WRC" in out.stdout + out.stderr
    return project / "train", tiny_dataset


@pytest.mark.compat("lifecycle")
def test_train_writes_checkpoints_and_wrc_log(trained):
    save_dir, _ = trained
    assert (save_dir / "weights" / "best.pt").is_file() and (save_dir / "weights" / "last.pt").is_file()
    lines = (save_dir / "wrc_weights.csv").read_text().splitlines()
    assert lines[0] == "epoch,layer,alpha,beta" and len(lines) == 1 + 7  # csp_wrc-n has 7 weighted shortcuts
    assert lines[1].startswith("1,model.2.m.0.wrc,")
    assert (save_dir / "wrc_weights.png").stat().st_size > 10_000  # plotted at the end of training


@pytest.mark.compat("lifecycle")
def test_val_and_predict(trained, tmp_path):
    import csv
    import re

    save_dir, data = trained
    best = save_dir / "weights" / "best.pt"
    val = yolo("val", f"model={best}", f"data={data}", f"project={tmp_path}", "name=val", *CPU, cwd=tmp_path)
    # "all  images  instances  P  R  mAP50  mAP50-95": the 4 val images and their 8 boxes, and the same mAP as the
    # validation at the end of training, which ran on the same weights (best.pt) without the CLI round trip
    row = re.search(r"^\s*all\s+(\d+)\s+(\d+)((?:\s+[\d.]+){4})\s*$", val.stdout + val.stderr, re.M)
    assert row and (row[1], row[2]) == ("4", "8"), val.stdout + val.stderr
    precision, recall, map50, map50_95 = (float(v) for v in row[3].split())
    assert 0 <= map50_95 <= map50 <= 1 and 0 <= precision <= 1 and 0 <= recall <= 1
    header, *epochs = csv.reader((save_dir / "results.csv").read_text().splitlines())
    final = dict(zip((h.strip() for h in header), epochs[-1]))  # 8.3.x pads the column names
    assert map50_95 == pytest.approx(float(final["metrics/mAP50-95(B)"]), abs=0.02)
    assert (tmp_path / "val" / "confusion_matrix.png").is_file()
    images = Path(str(data).replace("data.yaml", "images/val"))
    yolo(
        "predict",
        f"model={best}",
        f"source={images}",
        "save_txt=True",
        "conf=0.0001",
        f"project={tmp_path}",
        "name=predict",
        *CPU,
        cwd=tmp_path,
    )
    assert len([f for f in (tmp_path / "predict").iterdir() if f.is_file()]) == 4  # .jpg, or the source's suffix
    assert all(f.read_text().strip() for f in (tmp_path / "predict" / "labels").glob("*.txt"))


@pytest.mark.compat("safe loading")
@pytest.mark.skipif(
    not upstream_features()["weights-only loading (ULTRALYTICS_SAFE_LOAD=true)"], reason="ultralytics before 8.4.67"
)
def test_restricted_loading(trained, tmp_path):
    save_dir, data = trained
    best = save_dir / "weights" / "best.pt"
    images = Path(str(data).replace("data.yaml", "images/val"))
    args = ["predict", f"model={best}", f"source={images}", f"project={tmp_path}", *CPU]
    safe = {"ULTRALYTICS_SAFE_LOAD": "true"}  # 8.4.67 reads only 'true'; later releases also '1', 'yes', ...
    yolo(*args, "name=safe", env=safe, cwd=tmp_path)
    # Without cspdet imported, the weights_only unpickler cannot reach its classes (it never imports modules).
    off = yolo(*args, "name=off", env={**safe, "CSPDET_AUTOLOAD": "0"}, cwd=tmp_path, check=False)
    assert off.returncode != 0 and "references types outside" in off.stderr


def perturb_wrc(checkpoint: Path, out: Path):
    """Copy a checkpoint with alpha/beta moved far from 1, so that dropping the weighting would show."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(0)
    for name, p in ckpt["model"].named_parameters():
        if name.endswith(("wrc.alpha", "wrc.beta")):
            p.data = (torch.rand(p.shape, generator=generator) + 0.5).to(p.dtype)
    torch.save(ckpt, out)


@pytest.mark.compat("export")
def test_export_onnx_matches_pytorch(trained, tmp_path):
    import onnxruntime
    from ultralytics import YOLO

    save_dir, _ = trained
    weights = tmp_path / "perturbed.pt"
    perturb_wrc(save_dir / "weights" / "best.pt", weights)
    yolo("export", f"model={weights}", "format=onnx", "imgsz=64", cwd=tmp_path)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(weights.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    ort = session.run(None, {session.get_inputs()[0].name: x})[0]
    model = YOLO(weights).model.float().eval()
    with torch.no_grad():
        reference = model(torch.from_numpy(x))[0].numpy()
        fused = model.fuse()(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(fused, reference, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ort, reference, atol=1e-3, rtol=1e-3)


@pytest.mark.compat("lifecycle")
def test_resume_after_interruption(tiny_dataset, tmp_path):
    """A run killed after its first epoch continues from last.pt with `yolo train resume`."""
    interrupted = f"""
from ultralytics import YOLO
model = YOLO("csp_wrc-n.yaml")
def stop(trainer):
    raise KeyboardInterrupt("simulated interruption after epoch 1")
model.add_callback("on_model_save", stop)
model.train(data={str(tiny_dataset)!r}, epochs=2, project={str(tmp_path)!r}, name="run", device="cpu", workers=0,
            imgsz=64, batch=4)
"""
    first = run([sys.executable, "-c", interrupted], cwd=tmp_path, check=False)
    assert first.returncode != 0 and "simulated interruption" in first.stderr
    last = tmp_path / "run" / "weights" / "last.pt"
    resumed = yolo("train", "resume", f"model={last}", cwd=tmp_path)
    assert "Resuming training" in resumed.stdout + resumed.stderr
    assert len((tmp_path / "run" / "results.csv").read_text().splitlines()) == 1 + 2
    assert len((tmp_path / "run" / "wrc_weights.csv").read_text().splitlines()) == 1 + 2 * 7


@pytest.mark.compat("lifecycle")
def test_checkpoint_without_cspdet_names_it(trained, tmp_path):
    """Where cspdet is not installed, loading a cspdet checkpoint ends naming cspdet as the missing package."""
    save_dir, _ = trained
    site = tmp_path / "site"  # the environment's site-packages without anything of cspdet's
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "cspdet" not in entry.name:
            (site / entry.name).symlink_to(entry)
    best = save_dir / "weights" / "best.pt"
    code = f"import site; site.addsitedir({str(site)!r}); from ultralytics import YOLO; YOLO({str(best)!r})"
    result = run([sys.executable, "-S", "-c", code], cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "appears to require 'cspdet'" in result.stdout
    assert result.stderr.rstrip().endswith("No module named 'cspdet'")
