"""`cspdet gpu-check`: its whole path on the CPU (the smoke run), and a clear error without a GPU."""

import pytest
import torch
from helpers import cspdet


def test_cpu_smoke_run_prints_the_table(tiny_dataset):
    args = ["--models", "yolov8_wrc-n.yaml", "yolov8n.yaml", "--data", str(tiny_dataset), "--epochs", "2"]
    text = cspdet("gpu-check", *args, "--imgsz", "64", "--batch", "4", "--rounds", "1", "--device", "cpu").stdout
    assert "GPU training: throughput and peak memory with AMP" in text and "CPU, torch" in text
    assert "| yolov8_wrc-n.yaml |" in text and "| yolov8n.yaml |" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_without_a_gpu_it_says_so():
    out = cspdet("gpu-check", "--device", "0", check=False)
    assert out.returncode == 1 and "no CUDA GPU is visible to torch" in out.stderr
