"""Queue predictors: the model's own predictor fed with ready batches gives the results of Model.predict."""

import numpy as np
import pytest
import torch
from ultralytics import YOLO

from cspdet.integration.predictor import export_batch, export_shape, model_format, probe, queue_predictor, source_types

pytestmark = pytest.mark.compat("video")


class Batches:
    """The smallest dataset a queue predictor accepts: ``bs``, ``source_type`` and (paths, frames, info) batches."""

    mode, bs = "video", 2

    def __init__(self, frames):
        self.source_type = source_types(stream=False)
        self.batches = iter([(["v.mp4"] * 2, frames[:2], [""] * 2), (["v.mp4"], frames[2:], [""])])

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
