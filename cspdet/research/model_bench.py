"""Model cost side by side: parameters, GFLOPs, CPU latency (fused PyTorch, ONNX Runtime) and training throughput.

Timings are interleaved: every round times each candidate once, in a shuffled order, so that a noisy, shared machine
slows all of them alike; report medians, spreads and per-round ratios.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.utils import TQDM
from ultralytics.utils.torch_utils import get_flops

from cspdet.integration.training import training_loss
from cspdet.research.report import Report, Table

# each weighted model and its unweighted twin (the same YAML with `wrc: false`; the stock model for the twins)
TWINS = {"csp_wrc-n.yaml": "csp_plain-n.yaml", "yolo11_wrc-n.yaml": "yolo11n.yaml", "yolov8_wrc-n.yaml": "yolov8n.yaml"}
MODELS = [*TWINS, "resnet_wrc-n.yaml", "cspresnet_wrc-n.yaml", *TWINS.values(), "yolo26n.yaml"]


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int, reps: int = 1, seed: int = 0) -> dict:
    """Time each candidate ``reps`` calls per round over ``rounds`` shuffled rounds; return seconds per call lists."""
    order, times = list(candidates), {name: [] for name in candidates}
    rng = random.Random(seed)
    for _ in TQDM(range(rounds), desc="timing rounds"):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            for _ in range(reps):
                candidates[name]()
            times[name].append((time.perf_counter() - start) / reps)
    return times


def summary(seconds: list[float]) -> str:
    """Median and interquartile range in milliseconds."""
    q1, median, q3 = np.percentile(np.array(seconds) * 1e3, [25, 50, 75])
    return f"{median:.2f} ({q1:.2f}-{q3:.2f})"


def ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios of two interleaved timings."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def fused_model(cfg: str) -> torch.nn.Module:
    """Build a detection model from its YAML and fuse it, as `yolo predict` and `yolo export` do."""
    return YOLO(cfg).model.fuse(verbose=False).eval()


def cost(cfg: str, imgsz: int) -> tuple[float, float]:
    """Return (parameters in millions, GFLOPs at imgsz) of a YAML model."""
    model = YOLO(cfg).model
    return sum(p.numel() for p in model.parameters()) / 1e6, get_flops(model, imgsz)


def torch_latency(cfg: str, imgsz: int) -> Callable[[], object]:
    """A batch-1 forward of the fused model under no_grad."""
    model, x = fused_model(cfg), torch.zeros(1, 3, imgsz, imgsz)

    @torch.no_grad()
    def forward():
        return model(x)

    forward()  # warm-up
    return forward


def onnx_latency(cfg: str, imgsz: int, folder: Path) -> Callable[[], object]:
    """A batch-1 ONNX Runtime run of the model exported by ultralytics' exporter."""
    import onnxruntime

    model = YOLO(cfg)
    path = model.export(format="onnx", imgsz=imgsz, simplify=True, verbose=False, project=str(folder))
    target = folder / f"{Path(cfg).stem}-{imgsz}.onnx"
    Path(path).replace(target)
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((1, 3, imgsz, imgsz), np.float32)}
    session.run(None, feed)  # warm-up
    return lambda: session.run(None, feed)


def training_step(cfg: str, imgsz: int, batch: int) -> Callable[[], object]:
    """One forward/backward/SGD step on a random batch with 4 random boxes per image (ultralytics' own loss)."""
    model = YOLO(cfg).model
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    boxes = torch.rand(batch * 4, 4, generator=generator) * 0.5 + 0.25
    boxes[:, 2:] *= 0.3
    data = {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=generator),
        "batch_idx": torch.arange(batch).repeat_interleave(4).float(),
        "cls": torch.randint(0, model.yaml["nc"], (batch * 4, 1), generator=generator).float(),
        "bboxes": boxes,
    }

    def step():
        optimizer.zero_grad()
        loss, _ = training_loss(model, data)
        loss.sum().backward()
        optimizer.step()

    step()  # warm-up
    return step


def training_run(cfg: str, data: str, epochs: int, imgsz: int, batch: int, device, project: Path) -> dict:
    """Train ``cfg`` with ultralytics' trainer (AMP on, validation off) and measure it.

    Returns images/s over the epochs after the first (warm-up: dataloader start, cuDNN autotuning), taking the median
    of each epoch's rate between its first and last batch, and the peak CUDA memory allocated (GiB; None on CPU).
    """
    model, stamps = YOLO(cfg), []
    model.add_callback("on_train_batch_end", lambda trainer: stamps.append((trainer.epoch, time.perf_counter())))
    cuda = torch.cuda.is_available() and str(device) != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model.train(
        data=data, epochs=epochs, imgsz=imgsz, batch=batch, device=device, amp=True, val=False, plots=False,
        seed=0, project=str(project), name=Path(cfg).stem, exist_ok=True, verbose=False,
    )  # fmt: skip
    rates = []
    for epoch in range(1, epochs):
        times = [t for e, t in stamps if e == epoch]
        if len(times) > 1:
            rates.append(batch * (len(times) - 1) / (times[-1] - times[0]))
    if not rates:
        raise ValueError(f"{cfg}: need at least 2 epochs of at least 2 batches to measure throughput")
    return {
        "images/s": statistics.median(rates),
        "iterations": len(stamps),
        "peak GiB": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def model_reports(
    models: list[str], imgsz: list[int], rounds: int, reps: int, train_imgsz: int, train_batch: int, onnx: bool = True
) -> list[Report]:
    """Per model: parameters, GFLOPs, batch-1 CPU latency (fused PyTorch, ONNX Runtime) and training throughput; and
    for each weighted model next to its unweighted twin (``TWINS``), the fused latency ratio per image size."""
    import tempfile

    backends = ["torch", "onnx"] if onnx else ["torch"]
    twins = [(w, p) for w, p in TWINS.items() if {w, p} <= set(models)]
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for size in imgsz:
            runners = {f"{m} torch": torch_latency(m, size) for m in models}
            if onnx:
                runners |= {f"{m} onnx": onnx_latency(m, size, Path(tmp)) for m in models}
            times = interleaved(runners, rounds, reps)
            for m in models:
                params, gflops = cost(m, size)
                latency = [summary(times[f"{m} {b}"]) if b in backends else "-" for b in ("torch", "onnx")]
                rows.append([m, size, f"{params:.2f}", f"{gflops:.2f}", *latency])
            for weighted, plain in twins:
                ratios.append(
                    [weighted, plain, size]
                    + [
                        f"{ratio(times[f'{weighted} {b}'], times[f'{plain} {b}']):.3f}" if b in backends else "-"
                        for b in ("torch", "onnx")
                    ]
                )
    steps = {m: training_step(m, train_imgsz, train_batch) for m in models}
    train = interleaved(steps, max(rounds // 3, 3))
    for row in rows:
        row.append(f"{train_batch / statistics.median(train[row[0]]):.1f}")
    header = ["model", "imgsz", "params (M)", "GFLOPs", "fused PyTorch ms, median (IQR)", "ONNX Runtime ms, "
              "median (IQR)", f"train images/s (imgsz {train_imgsz}, batch {train_batch})"]  # fmt: skip
    text = (
        f"CPU, batch 1, {torch.get_num_threads()} torch threads, {rounds} interleaved rounds x {reps} calls; "
        "models built from their YAMLs (80 classes) and fused as `yolo predict` does."
    )
    reports = [Report("model-cost", "Model cost: parameters, GFLOPs, CPU latency, training throughput", text,
                      [Table(header, rows)])]  # fmt: skip
    if ratios:
        header = ["weighted", "unweighted twin", "imgsz", "fused PyTorch", "ONNX Runtime"]
        reports.append(
            Report("wrc-fused-ratio", "Weighted shortcuts after fuse(): latency ratio to the twin",
                   "Median of per-round ratios of interleaved timings (target <= 1.01).", [Table(header, ratios)])
        )  # fmt: skip
    return reports


def gpu_training_report(models: list[str], data: str, epochs: int, imgsz: int, batch: int, rounds: int,
                        device: str) -> Report:  # fmt: skip
    """Training throughput and peak GPU memory with AMP of each model (``training_run``), interleaved rounds; with 2
    or more GPUs, a 1-epoch ``yolo train`` under torchrun too (``ddp_bench.torchrun_check``)."""
    import tempfile

    from cspdet.research.ddp_bench import torchrun_check

    cuda = device != "cpu"
    if cuda and not torch.cuda.is_available():
        raise OSError("no CUDA GPU is visible to torch (use --device cpu for a smoke run on the CPU)")
    card = torch.cuda.get_device_name(int(device.split(",")[0])) if cuda else "CPU"
    results = {m: [] for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for m in models if r % 2 == 0 else models[::-1]:
                run = training_run(m, data, epochs, imgsz, batch, device, Path(tmp))
                results[m].append(run)
                print(f"round {r + 1} {m}: {run}", flush=True)
        launches = torchrun_check(Path(tmp) / "torchrun") if cuda and torch.cuda.device_count() >= 2 else []
    rows = []
    for m, runs in results.items():
        speed = statistics.median(x["images/s"] for x in runs)
        peaks = [x["peak GiB"] for x in runs if x["peak GiB"] is not None]
        rows.append([m, f"{speed:.0f}", f"{max(peaks):.2f}" if peaks else "n/a", runs[0]["iterations"]])
    text = (
        f"{card}, torch {torch.__version__}, AMP {'on' if cuda else 'off (CPU)'}; imgsz {imgsz}, batch {batch}, "
        f"{epochs} epochs (the first is warm-up), {rounds} interleaved rounds, medians."
    )
    tables = [Table(["model", "train images/s", "peak GPU memory allocated (GiB)", "iterations"], rows)]
    if launches:
        tables.append(Table(["layout", "backend", "seconds"],
                            [[r["layout"], r["backend"], f"{r['seconds']:.0f}"] for r in launches],
                            "`yolo train` under torchrun, 1 epoch of a small shapes set:"))  # fmt: skip
    return Report("gpu-training", "GPU training: throughput and peak memory with AMP", text, tables)
