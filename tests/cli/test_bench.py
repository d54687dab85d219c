"""`cspdet bench`: each benchmark runs small and writes its table, with its command line, into the doc."""

import re

from conftest import cspdet


def test_startup_and_coco_benchmarks_write_their_sections(tmp_path):
    doc = tmp_path / "benchmarks.md"
    cspdet("bench", "startup", "--runs", "2", "--doc", str(doc))
    cspdet("bench", "coco-eval", "--images", "30", "--boxes", "200", "--detections", "10", "--rounds", "1",
           "--doc", str(doc))  # fmt: skip
    cspdet("bench", "coco-ingest", "--images", "40", "--boxes", "300", "--rounds", "1", "--dir", str(tmp_path),
           "--doc", str(doc))  # fmt: skip
    text = doc.read_text()
    assert "Command: `cspdet bench startup --runs 2 --doc" in text
    diff = re.search(r"\| cspdet\.eval \| [\d.]+ \|.*\| ([\d.e+-]+) \|", text)[1]
    assert float(diff) < 1e-6  # the same 12 numbers as pycocotools
    assert "| cspdet, cache hit (labels) |" in text and "| ultralytics convert_coco (to .txt) |" in text
    cspdet("bench", "startup", "--runs", "2", "--doc", str(doc))
    assert doc.read_text().count("<!-- startup:start -->") == 1  # rerunning replaces its section


def test_model_benchmark_ratio_of_twins(tmp_path):
    doc = tmp_path / "benchmarks.md"
    args = ["--models", "yolov8_wrc-n.yaml", "yolov8n.yaml", "--imgsz", "64", "--rounds", "2", "--reps", "1"]
    cspdet("bench", "model", *args, "--train-imgsz", "64", "--train-batch", "2", "--no-onnx", "--doc", str(doc))
    text = doc.read_text()
    assert re.search(r"\| yolov8n\.yaml \| 64 \| 3\.16 \| 0\.\d+ \|", text)  # 3.16 M parameters, as upstream
    assert re.search(r"\| yolov8_wrc-n\.yaml \| yolov8n\.yaml \| 64 \| [\d.]+ \| - \|", text)
