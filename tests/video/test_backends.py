"""Exported models through the same pipeline: each gives `yolo predict`'s detections on the same file, with its own
thread policy (ONNX Runtime and OpenVINO limited to the worker's share of the cores, no busy-waiting or pinning)."""

import os
import shutil

import pytest
from helpers.video import yolo_predict_detections
from ultralytics import YOLO

from cspdet.video import load_backend, predict_video
from cspdet.video.detections import mismatched_frames, read_detections

FORMATS = ("pt", "onnx", "openvino", "torchscript")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model, imgsz) -> dict:
    """The demo model and its exports at the test size, as `yolo export format=... imgsz=...` writes them."""
    folder = tmp_path_factory.mktemp("exports")
    pt = shutil.copy(model, folder / "demo.pt")
    return {"pt": pt} | {f: YOLO(pt).export(format=f, imgsz=imgsz, device="cpu") for f in FORMATS[1:]}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_backend_gives_the_detections_of_yolo_predict(tmp_path, exported, clip, imgsz, fmt):
    backend = load_backend(exported[fmt], imgsz=imgsz, device="cpu")
    assert backend.format == fmt and len(backend.predictors) == (2 if (os.cpu_count() or 1) > 1 else 1)
    assert backend.batch == (1 if fmt in ("onnx", "openvino") else 4)  # static exports take their own batch size
    summary = predict_video(backend, clip, tmp_path / "out.mp4", detections=tmp_path / "d.jsonl")
    ours = read_detections(tmp_path / "d.jsonl")
    assert summary.frames == len(ours) == 60 and sum(map(len, ours)) > 100
    assert mismatched_frames(ours, yolo_predict_detections(exported[fmt], clip, imgsz, tmp_path)) == []


def test_runtimes_get_the_workers_share_of_the_cores(exported, imgsz):
    onnx = load_backend(exported["onnx"], imgsz=imgsz, device="cpu")
    for predictor in onnx.predictors:
        session = getattr(predictor.model, "backend", predictor.model).session
        options = session.get_session_options()
        assert options.intra_op_num_threads == onnx.threads
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    openvino = load_backend(exported["openvino"], imgsz=imgsz, device="cpu")
    compiled = {id(getattr(p.model, "backend", p.model).ov_compiled_model) for p in openvino.predictors}
    assert len(compiled) == len(openvino.predictors)  # one compiled model (and infer request) per worker
    model = getattr(openvino.predictors[0].model, "backend", openvino.predictors[0].model).ov_compiled_model
    assert model.get_property("INFERENCE_NUM_THREADS") == openvino.threads
    assert model.get_property("ENABLE_CPU_PINNING") is False
    assert onnx.threads == max(1, (os.cpu_count() or 1) // len(onnx.predictors))


def test_static_export_padding_is_pointed_out(exported, imgsz):
    hint = load_backend(exported["onnx"], imgsz=imgsz, device="cpu").padding_hint((320, 240))
    assert "exported for 160x160 inputs, but these frames need only 128x160" in hint and "imgsz=128,160" in hint
    assert load_backend(exported["pt"], imgsz=imgsz, device="cpu").padding_hint((320, 240)) is None
