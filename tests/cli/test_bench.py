"""`cspdet bench`: each benchmark runs small and prints its tables."""

import re

from helpers import cspdet


def test_startup_and_coco_benchmarks_print_their_tables(tmp_path):
    text = cspdet("bench", "startup", "--runs", "2").stdout
    assert "## Start-up cost of the auto-load hook" in text and "| `import _cspdet_hook` (cumulative) |" in text
    args = ["--images", "30", "--boxes", "200", "--detections", "10", "--rounds", "1"]
    text = cspdet("bench", "coco-eval", *args).stdout
    diff = re.search(r"\| cspdet\.eval \| [\d.]+ \|.*\| ([\d.e+-]+) \|", text)[1]
    assert float(diff) < 1e-6  # the same 12 numbers as pycocotools
    args = ["--images", "40", "--boxes", "300", "--rounds", "1", "--dir", str(tmp_path)]
    text = cspdet("bench", "coco-ingest", *args).stdout
    assert "| cspdet, cache hit (labels) |" in text and "| ultralytics convert_coco (to .txt) |" in text


def test_model_benchmark_ratio_of_twins():
    args = ["--models", "yolov8_wrc-n.yaml", "yolov8n.yaml", "--imgsz", "64", "--rounds", "2", "--reps", "1"]
    text = cspdet("bench", "model", *args, "--train-imgsz", "64", "--train-batch", "2", "--no-onnx").stdout
    assert re.search(r"\| yolov8n\.yaml \| 64 \| 3\.16 \| 0\.\d+ \|", text)  # 3.16 M parameters, as upstream
    assert re.search(r"\| yolov8_wrc-n\.yaml \| yolov8n\.yaml \| 64 \| [\d.]+ \| - \|", text)
