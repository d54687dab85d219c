"""Cost of the cfg models against ultralytics baselines, and what the weighted shortcuts cost once fused.

Writes two sections of docs/benchmarks.md: per-model parameters, GFLOPs, CPU latency (fused PyTorch, ONNX Runtime)
and training throughput; and the fused latency ratio csp_wrc / csp_plain per image size (target <= 1.01).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from benchdoc import markdown_table, update_section

from cspdet import benchmark

BASELINES = ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml"]
CFG_MODELS = ["csp_wrc-n.yaml", "csp_plain-n.yaml", "resnet_wrc-n.yaml", "cspresnet_wrc-n.yaml"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=CFG_MODELS + BASELINES)
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds per measurement")
    parser.add_argument("--reps", type=int, default=3, help="calls per candidate and round")
    parser.add_argument("--train-imgsz", type=int, default=320)
    parser.add_argument("--train-batch", type=int, default=8)
    args = parser.parse_args()
    threads = torch.get_num_threads()

    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for imgsz in args.imgsz:
            runners = {f"{m} torch": benchmark.torch_latency(m, imgsz) for m in args.models}
            runners |= {f"{m} onnx": benchmark.onnx_latency(m, imgsz, Path(tmp)) for m in args.models}
            times = benchmark.interleaved(runners, args.rounds, args.reps)
            for m in args.models:
                params, gflops = benchmark.cost(m, imgsz)
                rows.append(
                    [
                        m,
                        imgsz,
                        f"{params:.2f}",
                        f"{gflops:.1f}",
                        benchmark.summary(times[f"{m} torch"]),
                        benchmark.summary(times[f"{m} onnx"]),
                    ]
                )
            if {"csp_wrc-n.yaml", "csp_plain-n.yaml"} <= set(args.models):
                ratios.append(
                    [
                        imgsz,
                        *(
                            f"{benchmark.ratio(times[f'csp_wrc-n.yaml {k}'], times[f'csp_plain-n.yaml {k}']):.3f}"
                            for k in ("torch", "onnx")
                        ),
                    ]
                )
    steps = {m: benchmark.training_step(m, args.train_imgsz, args.train_batch) for m in args.models}
    train = benchmark.interleaved(steps, max(args.rounds // 3, 3))
    for row in rows:
        row.append(f"{args.train_batch / statistics.median(train[row[0]]):.1f}")

    header = [
        "model",
        "imgsz",
        "params (M)",
        "GFLOPs",
        "fused PyTorch ms, median (IQR)",
        "ONNX Runtime ms, median (IQR)",
        f"train images/s (imgsz {args.train_imgsz}, batch {args.train_batch})",
    ]
    note = (
        f"CPU, batch 1, {threads} torch threads, {args.rounds} interleaved rounds x {args.reps} calls; "
        "models built from their YAMLs (80 classes) and fused as `yolo predict` does."
    )
    update_section(
        "model-cost",
        "Model cost: parameters, GFLOPs, CPU latency, training throughput",
        f"{note}\n\n{markdown_table(header, rows)}",
    )
    if ratios:
        update_section(
            "wrc-fused-ratio",
            "Weighted shortcuts after fuse(): latency ratio csp_wrc-n / csp_plain-n",
            "Median of per-round ratios of interleaved timings (target <= 1.01).\n\n"
            + markdown_table(["imgsz", "fused PyTorch", "ONNX Runtime"], ratios),
        )


if __name__ == "__main__":
    main()
