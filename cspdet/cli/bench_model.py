"""Model cost against ultralytics' baselines, and what the weighted shortcuts cost once fused.

Two tables: per model, parameters, GFLOPs, CPU latency at batch 1 (fused PyTorch, ONNX Runtime) and training
throughput; and, for each weighted model and its unweighted twin (the same YAML with `wrc: false`, which is the stock
model for yolo11_wrc and yolov8_wrc), the fused latency ratio per image size (target <= 1.01).

    cspdet bench model                                                    # every model, imgsz 320 and 640
    cspdet bench model --models yolo11_wrc-n.yaml yolo11n.yaml --rounds 10
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument(
        "--models",
        nargs="+",
        help="model YAMLs, cspdet's or ultralytics' (default: every bundled model, the stock twins and yolo26n)",
    )
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds per measurement")
    parser.add_argument("--reps", type=int, default=3, help="calls per candidate and round")
    parser.add_argument("--train-imgsz", type=int, default=320)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime latency")


def reports(args) -> list:
    from cspdet.research.model_bench import MODELS, model_reports

    return model_reports(
        args.models or MODELS,
        args.imgsz,
        args.rounds,
        args.reps,
        args.train_imgsz,
        args.train_batch,
        onnx=not args.no_onnx,
    )
