"""Queue predictors: the model's own predictor fed with ready batches gives the results of Model.predict."""

import numpy as np
import onnxruntime
import openvino
import pytest
import torch
from ultralytics import YOLO

from cspdet.integration.predictor import (
    cpu_threads,
    export_batch,
    export_shape,
    model_format,
    probe,
    queue_predictor,
    source_types,
    warm_up,
)

pytestmark = pytest.mark.compat("video")


class Batches:
    """The smallest dataset a queue predictor accepts: ``bs``, ``source_type`` and (paths, frames, info) batches."""

    mode = "video"

    def __init__(self, frames, bs: int = 2):
        self.source_type, self.bs = source_types(stream=False), bs
        batches = [frames[i : i + bs] for i in range(0, len(frames), bs)]
        self.batches = iter([(["v.mp4"] * len(b), b, [""] * len(b)) for b in batches])

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.batches)


def test_probe_finds_the_internals_it_needs():
    assert probe() is None


def test_queue_predictor_equals_model_predict():
    torch.manual_seed(0)
    yolo = YOLO("csp_wrc-n.yaml")
    frames = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8) for i in range(3)]
    overrides = {"imgsz": 128, "conf": 0.0001, "device": "cpu", "save": False, "verbose": False, "batch": 2}
    predictor = queue_predictor(yolo, {**overrides, "rect": True})
    assert (model_format(predictor), export_batch(predictor), export_shape(predictor)) == ("pt", None, None)
    results = list(predictor.stream_inference(Batches(frames)))
    expected = yolo.predict(frames, imgsz=128, conf=0.0001, device="cpu", verbose=False)
    assert len(results) == 3
    for got, want in zip(results, expected):
        assert len(want.boxes) > 0
        torch.testing.assert_close(got.boxes.data, want.boxes.data, atol=1e-3, rtol=1e-4)
    second = queue_predictor(yolo, {**overrides, "rect": True})
    assert second.model is not predictor.model  # each worker has its own loaded model
    assert len(list(second.stream_inference(Batches(frames)))) == 3


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("dynamic", [True, False])
def test_exports_load_once_with_the_workers_threads(tmp_path, fmt, dynamic):
    """The runtime ultralytics creates has the worker's options (8.3.x's IOBinding for static ONNX included), and its
    predictions are those of the model's own predict."""
    torch.manual_seed(0)
    torch.save({"model": YOLO("csp_wrc-n.yaml").model, "train_args": {}}, tmp_path / "m.pt")  # as Model.save writes
    try:
        path = YOLO(tmp_path / "m.pt").export(format=fmt, imgsz=128, dynamic=dynamic)
    except AttributeError as e:  # 8.3.0 exports through openvino.runtime, which recent openvino removed
        pytest.skip(f"this ultralytics cannot export to {fmt} with the installed runtime: {e}")
    frames = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8) for i in range(3)]
    bs = 2 if dynamic else 1  # a static export takes its own batch size (1)
    overrides = {"imgsz": 128, "conf": 0.0001, "device": "cpu", "save": False, "verbose": False, "batch": bs}
    with cpu_threads(path, 1):
        predictor = queue_predictor(YOLO(path), {**overrides, "rect": True})
    assert (onnxruntime.InferenceSession.__name__, openvino.Core.__name__) == ("InferenceSession", "Core")  # put back
    runtime = getattr(predictor.model, "backend", predictor.model)
    if fmt == "onnx":
        options = runtime.session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    else:
        compiled = runtime.ov_compiled_model
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 1 and compiled.get_property("NUM_STREAMS") == 1
        assert compiled.get_property("ENABLE_CPU_PINNING") is False
        warm_up(predictor)
    results = list(predictor.stream_inference(Batches(frames, bs)))
    exported = YOLO(path)  # one frame per call: releases before 8.4.1xx do not split batches for a static export
    expected = [exported.predict(f, imgsz=128, conf=0.0001, device="cpu", verbose=False)[0] for f in frames]
    for got, want in zip(results, expected, strict=True):
        assert len(want.boxes) > 0
        torch.testing.assert_close(got.boxes.data, want.boxes.data, atol=1e-3, rtol=1e-3)
