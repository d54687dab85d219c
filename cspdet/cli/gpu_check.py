"""GPU check: training throughput and peak GPU memory with AMP of the weighted twins against their stock models.

Each model trains a fixed number of iterations (epochs x batches of the embedded shapes dataset) with ultralytics'
own trainer, AMP on; rounds are interleaved and the medians reported, the first epoch being warm-up. With 2 or more
GPUs, a 1-epoch `yolo train` under torchrun follows (1 node x 2 GPUs, and 2 loopback nodes x 1 GPU, NCCL). Needs a
CUDA GPU (--device cpu runs the same code on the CPU, as a smoke check). `python -m tools.bench gpu-check` (from a
checkout) also writes the table into docs/benchmarks.md; on a lent device machine: `bash tools/gpu_check.sh`.

    cspdet gpu-check                                   # yolo11_wrc-n vs yolo11n, yolov8_wrc-n vs yolov8n, csp twins
    cspdet gpu-check --models yolo11_wrc-s.yaml yolo11s.yaml --batch 64
"""

from __future__ import annotations

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


def reports(args) -> list:
    from cspdet.research.model_bench import gpu_training_report

    return [gpu_training_report(args.models, args.data, args.epochs, args.imgsz, args.batch, args.rounds, args.device)]


def run(args) -> int:
    from cspdet.cli.bench import show

    return show(reports(args))
