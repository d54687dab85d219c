"""`cspdet bench video` run small: every command timed, the detections compared, its table printed."""

import re

import numpy as np
import torch
from helpers import cspdet
from ultralytics import YOLO

from cspdet.data.shapes import write_video
from cspdet.research.video_bench import cut_clip, inference_cost, mismatched_frames, same_detections, timestamps


def test_benchmark_prints_its_table(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=30, size=(320, 240), fps=30, seed=0)
    args = ["--video", str(clip), "--frames", "20", "--imgsz", "96", "--formats", "pt", "onnx", "--rounds", "1"]
    text = cspdet("bench", "video", *args, "--dir", str(tmp_path / "work")).stdout
    assert "## Video inference: cspdet video vs yolo predict" in text
    assert "20 frames of 320x240 (h264, yuv420p)" in text and "timestamps in 2/2 runs checked" in text
    numbers = r"([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+)x \|.*\| 20/20 \|"  # frames/s, speed-ups, equal frames
    for name in ("best.pt", "best.onnx"):
        row = re.search(rf"\| `{re.escape(name)}` \| {numbers}", text)
        assert row and all(float(v) > 0 for v in row.groups())
        cost = re.search(rf"\| `{re.escape(name)}` \|.*\| 20/20 \| [\d.]+ \| ([\d.]+) \| ([\d.]+)x \|$", text, re.M)
        assert cost and all(float(v) > 0 for v in cost.groups())  # runtime alone (CPU ms/frame), ceiling
    assert "| stock `yolo predict model=best.pt save=True` | - |" in text


def test_cut_clip_keeps_timestamps_and_detections_compare(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=12, size=(96, 64), fps=25, seed=1)
    cut = cut_clip(clip, tmp_path / "cut.mp4", 5)
    assert timestamps(cut) == ("h264", "yuv420p", timestamps(clip)[2][:5])
    a = np.array([[0, 0, 10, 10, 0.9, 1], [5, 5, 20, 20, 0.5, 2]])
    assert same_detections(a, a[::-1]) and not same_detections(a, a[:1])
    assert not same_detections(a, a + [0, 0, 2, 0, 0, 0]) and not same_detections(a, a + [0, 0, 0, 0, 0, 1])
    assert mismatched_frames([a, a], [a[::-1]]) == [1]


def test_inference_cost_grows_with_the_input(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=8, size=(320, 240), fps=30, seed=0)
    torch.save({"model": YOLO("csp_wrc-n.yaml").model, "train_args": {}}, tmp_path / "m.pt")  # as Model.save writes
    small, large = (inference_cost(tmp_path / "m.pt", clip, imgsz, count=8) for imgsz in (64, 256))
    assert 0 < small and 4 * small < large  # 16 times the pixels
