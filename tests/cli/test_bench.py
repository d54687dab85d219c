"""`cspdet bench`: each benchmark runs small and prints its tables."""

import re

from helpers import cspdet


def test_startup_and_coco_benchmarks_print_their_tables(tmp_path):
    text = cspdet("bench", "startup", "--runs", "2").stdout
    assert "## Start-up cost of the auto-load hook" in text and "| `import _cspdet_hook` (cumulative) |" in text
    args = ["--images", "30", "--boxes", "200", "--detections", "10", "--rounds", "1"]
    text = cspdet("bench", "coco-eval", *args).stdout
    diff = re.search(r"\| cspdet\.eval \| [\d.]+ \|.*\| ([\d.e+-]+) \|", text)[1]
    assert float(diff) == 0  # the same 12 numbers as pycocotools, to the last bit
    args = ["--images", "40", "--boxes", "300", "--rounds", "1", "--dir", str(tmp_path)]
    text = cspdet("bench", "coco-ingest", *args).stdout
    assert "| cspdet, cache hit (labels) |" in text and "| ultralytics convert_coco (to .txt) |" in text


def test_coco_eval_without_the_bench_extra_names_it(tmp_path):
    """Without pycocotools (an extra), the benchmark stops at once with one line naming the extra to install."""
    (tmp_path / "pycocotools").mkdir()
    (tmp_path / "pycocotools" / "__init__.py").write_text("raise ImportError('not installed')\n")
    out = cspdet("bench", "coco-eval", "--images", "10", env={"PYTHONPATH": str(tmp_path)}, check=False)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "cspdet bench: error: cspdet bench coco-eval needs pycocotools, which is not installed: "
        "pip install 'cspdet[bench]'"
    ]


def test_model_benchmark_ratio_of_twins():
    args = ["--models", "yolov8_wrc-n.yaml", "yolov8n.yaml", "--imgsz", "64", "--rounds", "2", "--reps", "1"]
    text = cspdet("bench", "model", *args, "--train-imgsz", "64", "--train-batch", "2", "--no-onnx").stdout
    assert re.search(r"\| yolov8n\.yaml \| 64 \| 3\.16 \| 0\.\d+ \|", text)  # 3.16 M parameters, as upstream
    assert re.search(r"\| yolov8_wrc-n\.yaml \| yolov8n\.yaml \| 64 \| [\d.]+ \| - \|", text)
