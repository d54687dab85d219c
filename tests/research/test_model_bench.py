"""The measurements behind `cspdet bench model` and `cspdet gpu-check`, run small on the CPU."""

import pytest
import torch

from cspdet.research import model_bench


def test_interleaved_times_every_candidate_every_round():
    calls = []
    times = model_bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=4, reps=2)
    assert calls.count("a") == calls.count("b") == 8
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert all(t >= 0 for v in times.values() for t in v)


def test_summary_and_ratio():
    assert model_bench.summary([0.001, 0.002, 0.003, 0.004, 0.005]) == "3.00 (2.00-4.00)"
    assert model_bench.ratio([2.0, 3.0, 10.0], [1.0, 1.0, 1.0]) == 3.0  # median of per-round ratios


def test_cost_latency_and_training_step_of_a_cfg_model():
    params, gflops = model_bench.cost("csp_wrc-n.yaml", 64)
    assert 1 < params < 5 and gflops > 0
    forward = model_bench.torch_latency("csp_wrc-n.yaml", 64)
    assert forward()[0].shape[0] == 1
    model_bench.training_step("csp_wrc-n.yaml", 64, 2)()  # ultralytics' loss, backward and an SGD step


def test_onnx_latency_runs_the_exported_model(tmp_path):
    run = model_bench.onnx_latency("csp_wrc-n.yaml", 64, tmp_path)
    outputs = run()
    assert outputs[0].shape[0] == 1
    assert (tmp_path / "csp_wrc-n-64.onnx").is_file()


def test_training_run_measures_throughput(tmp_path, tiny_dataset):
    result = model_bench.training_run("csp_wrc-n.yaml", str(tiny_dataset), 2, 64, 4, "cpu", tmp_path)
    assert result["iterations"] == 4  # 2 epochs of 8 images at batch 4
    assert result["images/s"] > 0
    assert result["peak GiB"] is None  # no CUDA memory on the CPU


def test_training_run_needs_two_epochs(tmp_path, tiny_dataset):
    with pytest.raises(ValueError, match="at least 2 epochs"):
        model_bench.training_run("csp_plain-n.yaml", str(tiny_dataset), 1, 64, 4, "cpu", tmp_path)


def test_fused_model_is_fused():
    model = model_bench.fused_model("csp_plain-n.yaml")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
