"""Model cost against ultralytics' baselines, and what the weighted shortcuts cost once fused.

Writes two tables: per model, parameters, GFLOPs, CPU latency at batch 1 (fused PyTorch, ONNX Runtime) and training
throughput; and, for each weighted model and its unweighted twin (the same YAML with `wrc: false`, which is the stock
model for yolo11_wrc and yolov8_wrc), the fused latency ratio per image size (target <= 1.01).

    cspdet bench model                                                    # every model, imgsz 320 and 640
    cspdet bench model --models yolo11_wrc-n.yaml yolo11n.yaml --rounds 10
"""

from __future__ import annotations

TWINS = {"csp_wrc-n.yaml": "csp_plain-n.yaml", "yolo11_wrc-n.yaml": "yolo11n.yaml", "yolov8_wrc-n.yaml": "yolov8n.yaml"}
MODELS = [*TWINS, "resnet_wrc-n.yaml", "cspresnet_wrc-n.yaml", *TWINS.values(), "yolo26n.yaml"]


def add_arguments(parser):
    parser.add_argument("--models", nargs="+", default=MODELS, help="model YAMLs (cspdet's or ultralytics')")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds per measurement")
    parser.add_argument("--reps", type=int, default=3, help="calls per candidate and round")
    parser.add_argument("--train-imgsz", type=int, default=320)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime latency")


def run(args, doc) -> int:
    import statistics
    import tempfile
    from pathlib import Path

    import torch

    from cspdet.research import benchmark
    from cspdet.research.benchdoc import markdown_table, update_section

    backends = ["torch"] if args.no_onnx else ["torch", "onnx"]
    twins = [(w, p) for w, p in TWINS.items() if {w, p} <= set(args.models)]
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for imgsz in args.imgsz:
            runners = {f"{m} torch": benchmark.torch_latency(m, imgsz) for m in args.models}
            if "onnx" in backends:
                runners |= {f"{m} onnx": benchmark.onnx_latency(m, imgsz, Path(tmp)) for m in args.models}
            times = benchmark.interleaved(runners, args.rounds, args.reps)
            for m in args.models:
                params, gflops = benchmark.cost(m, imgsz)
                latency = [benchmark.summary(times[f"{m} {b}"]) if b in backends else "-" for b in ("torch", "onnx")]
                rows.append([m, imgsz, f"{params:.2f}", f"{gflops:.2f}", *latency])
            for weighted, plain in twins:
                ratios.append(
                    [weighted, plain, imgsz]
                    + [
                        f"{benchmark.ratio(times[f'{weighted} {b}'], times[f'{plain} {b}']):.3f}"
                        if b in backends
                        else "-"
                        for b in ("torch", "onnx")
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
        f"CPU, batch 1, {torch.get_num_threads()} torch threads, {args.rounds} interleaved rounds x {args.reps} calls; "
        "models built from their YAMLs (80 classes) and fused as `yolo predict` does."
    )
    cost = f"{note}\n\n{markdown_table(header, rows)}"
    ratio = "Median of per-round ratios of interleaved timings (target <= 1.01).\n\n" + markdown_table(
        ["weighted", "unweighted twin", "imgsz", "fused PyTorch", "ONNX Runtime"], ratios
    )
    print(cost, ratio, sep="\n\n")
    if doc:
        update_section(doc, "model-cost", "Model cost: parameters, GFLOPs, CPU latency, training throughput", cost)
        if ratios:
            update_section(doc, "wrc-fused-ratio", "Weighted shortcuts after fuse(): latency ratio to the twin", ratio)
    return 0
