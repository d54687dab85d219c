"""GPU check: training throughput and peak GPU memory with AMP of the weighted twins against their stock models.

Each model trains a fixed number of iterations (epochs x batches of the embedded shapes dataset) with ultralytics'
own trainer, AMP on; rounds are interleaved and the medians reported, the first epoch being warm-up. With 2 or more
GPUs, a 1-epoch `yolo train` under torchrun follows (1 node x 2 GPUs, and 2 loopback nodes x 1 GPU, NCCL). Needs a
CUDA GPU (--device cpu runs the same code on the CPU, as a smoke check). Writes the "GPU training" table into the
markdown file (default docs/benchmarks.md if the current folder has one). On a lent device machine:
`bash tools/gpu_check.sh`.

    cspdet gpu-check                                   # yolo11_wrc-n vs yolo11n, yolov8_wrc-n vs yolov8n, csp twins
    cspdet gpu-check --models yolo11_wrc-s.yaml yolo11s.yaml --batch 64
"""

from __future__ import annotations

from pathlib import Path

MODELS = [
    *("yolo11_wrc-n.yaml", "yolo11n.yaml"),
    *("yolov8_wrc-n.yaml", "yolov8n.yaml"),
    *("csp_wrc-n.yaml", "csp_plain-n.yaml"),
]


def add_arguments(parser):
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--data", default="shapes.yaml")
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up and not counted")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="0")
    parser.add_argument("--doc", type=Path, help="markdown file for the table (default: docs/benchmarks.md if any)")


def run(args) -> int:
    import statistics
    import tempfile

    import torch

    from cspdet.cli.bench import DEFAULT_DOC
    from cspdet.research import benchmark
    from cspdet.research.benchdoc import markdown_table, update_section
    from cspdet.research.ddp_bench import torchrun_check

    cuda = args.device != "cpu"
    if cuda and not torch.cuda.is_available():
        raise OSError("no CUDA GPU is visible to torch (use --device cpu for a smoke run on the CPU)")
    card = torch.cuda.get_device_name(int(args.device.split(",")[0])) if cuda else "CPU"
    results = {m: [] for m in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for m in args.models if r % 2 == 0 else args.models[::-1]:
                run = benchmark.training_run(m, args.data, args.epochs, args.imgsz, args.batch, args.device, Path(tmp))
                results[m].append(run)
                print(f"round {r + 1} {m}: {run}", flush=True)
        launches = torchrun_check(Path(tmp) / "torchrun") if cuda and torch.cuda.device_count() >= 2 else []
    rows = []
    for m, runs in results.items():
        speed = statistics.median(x["images/s"] for x in runs)
        peaks = [x["peak GiB"] for x in runs if x["peak GiB"] is not None]
        rows.append([m, f"{speed:.0f}", f"{max(peaks):.2f}" if peaks else "n/a", runs[0]["iterations"]])
    body = (
        f"{card}, torch {torch.__version__}, AMP {'on' if cuda else 'off (CPU)'}; imgsz {args.imgsz}, batch "
        f"{args.batch}, {args.epochs} epochs (the first is warm-up), {args.rounds} interleaved rounds, medians.\n\n"
        + markdown_table(["model", "train images/s", "peak GPU memory allocated (GiB)", "iterations"], rows)
    )
    if launches:
        body += "\n\n`yolo train` under torchrun, 1 epoch of a small shapes set:\n\n" + markdown_table(
            ["layout", "backend", "seconds"], [[r["layout"], r["backend"], f"{r['seconds']:.0f}"] for r in launches]
        )
    print(body)
    doc = args.doc or (DEFAULT_DOC if DEFAULT_DOC.is_file() else None)
    if doc:
        update_section(doc, "gpu-training", "GPU training: throughput and peak memory with AMP", body)
    return 0
