"""`cspdet bench video` run small: every command timed, the detections compared, the CPU per stage (in the runs and in
one thread) and the drawing costs reported, its tables printed."""

import re

import pytest
import torch
from helpers import cspdet
from ultralytics import YOLO

from cspdet.data.shapes import write_video
from cspdet.research.video_bench import cut_clip, inference_cost, timestamps
from cspdet.video import load_backend, predict_video


def test_benchmark_prints_its_table(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=30, size=(320, 240), fps=30, seed=0)
    args = ["--video", str(clip), "--frames", "20", "--imgsz", "96", "--formats", "pt", "onnx", "--rounds", "1"]
    text = cspdet("bench", "video", *args, "--dir", str(tmp_path / "work")).stdout
    assert "## Video inference: cspdet video vs yolo predict" in text
    assert "20 frames of 320x240 (h264, yuv420p)" in text and "timestamps in 2/2 runs checked" in text
    numbers = r"([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+)x \| 20/20 \| [\d.]+ \| ([\d.]+) \| ([\d.]+)x \|$"
    stages = r" \| ".join([r"([\d.]+)"] * 7) + r" \|$"  # five stages, the pipeline, the total
    for name in ("best.pt", "best.onnx"):
        row = re.search(rf"^\| `{re.escape(name)}` \| {numbers}", text, re.M)  # frames/s, speed-ups, runtime, ceiling
        assert row and all(float(v) > 0 for v in row.groups())
        cpu = re.search(rf"^\| `{re.escape(name)}` \| {stages}", text, re.M)
        decode, prepost, runtime, drawing, encoding, pipeline, total = map(float, cpu.groups())
        assert min(decode, prepost, runtime, drawing, encoding) > 0 and total > pipeline > 0
        assert pipeline == pytest.approx(total - runtime, abs=0.02)
        serial = re.search(rf"^\| `{re.escape(name)}` \| " + r" \| ".join([r"([\d.]+)"] * 6) + r" \|$", text, re.M)
        *alone, together, in_the_run = map(float, serial.groups())  # four stages in one thread, their sum, pipeline
        assert min(alone) > 0 and together == pytest.approx(sum(alone), abs=0.02) and in_the_run == pipeline
    assert "| `yolo predict model=best.pt imgsz=96 save=True` | - |" in text
    for way in ("ultralytics `Results.plot`", "cspdet `BoxPainter`", "supervision `BoxAnnotator` + `LabelAnnotator`"):
        assert re.search(rf"^\| {re.escape(way)} \| [\d.]+ \|$", text, re.M)


def test_cut_clip_keeps_timestamps(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=12, size=(96, 64), fps=25, seed=1)
    cut = cut_clip(clip, tmp_path / "cut.mp4", 5)
    assert timestamps(cut) == ("h264", "yuv420p", timestamps(clip)[2][:5])


def test_inference_cost_times_the_input_cspdet_video_gives_the_runtime(tmp_path):
    """The runtime alone is timed on what `cspdet video` feeds the model: its letterboxed shape, in its full batch (the
    engine takes up to a batch of what is ready)."""
    clip = write_video(tmp_path / "clip.mp4", frames=8, size=(320, 240), fps=30, seed=0)
    torch.save({"model": YOLO("csp_wrc-n.yaml").model, "train_args": {}}, tmp_path / "m.pt")  # as Model.save writes
    backend = load_backend(tmp_path / "m.pt", imgsz=128, batch=4, device="cpu")
    shapes = {"engine": [], "alone": []}
    seen = "engine"
    hooks = [p.model.register_forward_pre_hook(lambda m, args: shapes[seen].append(tuple(args[0].shape)))
             for p in backend.predictors]  # fmt: skip
    predict_video(backend, clip, tmp_path / "out.mp4")
    seen = "alone"
    cost = inference_cost(backend, clip, count=8)
    for hook in hooks:
        hook.remove()
    assert {s[1:] for s in shapes["engine"]} == {(3, 96, 128)} and max(s[0] for s in shapes["engine"]) <= 4
    assert shapes["alone"] == [(4, 3, 96, 128)] * 3  # a full batch: one untimed call, then 8 frames timed
    assert 0 < cost < float("inf")
