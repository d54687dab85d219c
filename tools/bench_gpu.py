"""Training throughput and peak GPU memory with AMP: csp_wrc, its no-WRC twin and yolo11n, side by side.

Each model trains a fixed number of iterations (epochs x batches of the embedded shapes dataset) with ultralytics'
own trainer; rounds are interleaved and the medians reported. Run through tools/gpu_check.sh on a CUDA machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from benchdoc import markdown_table, update_section

from cspdet import benchmark

MODELS = ["csp_wrc-n.yaml", "csp_plain-n.yaml", "yolo11n.yaml"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--data", default="datasets/shapes.yaml")
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up and not counted")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="0")
    args = parser.parse_args()

    cuda = args.device != "cpu"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA GPU visible to torch (use --device cpu for a smoke run)")
    card = torch.cuda.get_device_name(int(args.device.split(",")[0])) if cuda else "CPU"
    results = {m: [] for m in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = args.models if r % 2 == 0 else args.models[::-1]
            for m in order:
                run = benchmark.training_run(m, args.data, args.epochs, args.imgsz, args.batch, args.device, Path(tmp))
                results[m].append(run)
                print(f"round {r + 1} {m}: {run}", flush=True)
    base = statistics.median(x["images/s"] for x in results[args.models[0]])
    rows = []
    for m, runs in results.items():
        speed = statistics.median(x["images/s"] for x in runs)
        peaks = [x["peak GiB"] for x in runs if x["peak GiB"] is not None]
        rows.append(
            [m, f"{speed:.0f}", f"{speed / base:.2f}", f"{max(peaks):.2f}" if peaks else "n/a", runs[0]["iterations"]]
        )
    body = (
        f"{card}, torch {torch.__version__}, AMP {'on' if cuda else 'off (CPU)'}; "
        f"imgsz {args.imgsz}, batch {args.batch}, {args.epochs} epochs "
        f"(the first is warm-up), {args.rounds} interleaved rounds, medians.\n\n"
        + markdown_table(
            ["model", "train images/s", f"vs {args.models[0]}", "peak GPU memory allocated (GiB)", "iterations"], rows
        )
    )
    print(body)
    print(update_section("gpu-training", "GPU training: throughput and peak memory with AMP", body))


if __name__ == "__main__":
    main()
