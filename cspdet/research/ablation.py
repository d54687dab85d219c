"""Ablation of the shortcut weighting: train model variants over seeds with the ``yolo`` CLI and summarise them.

Each variant is a model YAML, optionally with its top-level ``wrc`` key replaced. Runs go seed by seed through all
variants, so that drift in a shared machine's speed spreads over every variant, and each finished run is appended to
``runs.jsonl`` at once: an interrupted ablation resumes where it stopped. A budget with ``pretrained`` starts every
variant from the same checkpoint (ultralytics transfers every tensor whose name and shape match); reruns of a seed
measure how far the same command lands from itself.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from cspdet.files import atomic_write
from cspdet.integration.configs import find_model_yaml
from cspdet.research.report import markdown_table

RECORDS = "runs.jsonl"
RECIPES = {  # training arguments besides epochs, imgsz and batch
    # small data on a CPU: an optimizer step per batch, no mosaic (objects stay large at 160 px), short warm-up
    "shapes": lambda batch: {"nbs": batch, "mosaic": 0, "warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.002,
                             "workers": 2},
    # BCCD (291 train images) on a CPU at 320 px: the same, with mosaic (dense cells keep their scale in it) until
    # the last 2 epochs
    "bccd": lambda batch: {"nbs": batch, "warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.002, "close_mosaic": 2,
                           "workers": 2},
    "ultralytics": lambda batch: {},  # ultralytics' own defaults, as for COCO
}  # fmt: skip
# results.csv columns read per epoch; the COCO ones exist for COCO-format data (cspdet.integration.loggers)
METRICS = {"mAP50-95": "metrics/mAP50-95(B)", "mAP50": "metrics/mAP50(B)", "COCO AP": "coco/AP",
           "COCO AP50": "coco/AP50"}  # fmt: skip
TRANSFERRED = re.compile(r"Transferred (\d+)/(\d+) items from pretrained weights")
REMAPPED = re.compile(r"Remapped (\d+)/(\d+) cls head rows from pretrained weights by class name")  # 8.4 on


@dataclass(frozen=True)
class Variant:
    """A model to train: ``model`` is a YAML name (scale suffix allowed); ``wrc`` replaces its top-level ``wrc``;
    ``baseline`` names the variant it is compared with, seed by seed (None for a baseline)."""

    name: str
    model: str
    wrc: object = None
    baseline: str | None = None

    def at_scale(self, scale: str) -> Variant:
        """The same variant at another model scale: yolo11n.yaml -> yolo11s.yaml, yolo11_wrc-n.yaml -> ...-s.yaml."""
        model = re.sub(r"(-?)[nslmx](\.ya?ml)$", rf"\g<1>{scale}\2", self.model)
        return replace(self, model=model)

    def model_yaml(self, folder: Path) -> str:
        """The model argument for ``yolo train``; a variant with ``wrc`` gets its own YAML written under ``folder``."""
        if self.wrc is None:
            return self.model
        found = find_model_yaml(self.model)
        if found is None:
            raise ValueError(f"variant '{self.name}': {self.model} is not a cspdet model YAML, so 'wrc' cannot be set")
        file, scale = found
        d = yaml.safe_load(file.read_text())
        if "wrc" not in d:
            raise ValueError(f"variant '{self.name}': {file} has no top-level 'wrc' key to replace")
        d["wrc"] = self.wrc
        path = folder / f"{file.stem}_{self.name}.yaml"
        with atomic_write(path) as f:
            yaml.safe_dump(d, f, sort_keys=False)
        return str(path.with_name(f"{path.stem}-{scale}.yaml") if scale else path)


VARIANTS = [  # the twins start from their stock model's convolutions for the same seed
    Variant("yolo11n", "yolo11n.yaml"),
    Variant("yolo11-channel", "yolo11_wrc-n.yaml", "channel", "yolo11n"),
    Variant("yolo11-fast", "yolo11_wrc-n.yaml", "fast", "yolo11n"),
    Variant("yolo11-rezero", "yolo11_wrc-n.yaml", "rezero", "yolo11n"),
    Variant("yolo11-layerscale", "yolo11_wrc-n.yaml", "layerscale", "yolo11n"),
    Variant("yolov8n", "yolov8n.yaml"),
    Variant("yolov8-channel", "yolov8_wrc-n.yaml", "channel", "yolov8n"),
    Variant("csp-plain", "csp_plain-n.yaml"),
    Variant("csp-scalar", "csp_wrc-n.yaml", "scalar", "csp-plain"),
    Variant("csp-channel", "csp_wrc-n.yaml", "channel", "csp-plain"),
    Variant("csp-rezero", "csp_wrc-n.yaml", "rezero", "csp-plain"),
    Variant("csp-fast", "csp_wrc-n.yaml", "fast", "csp-plain"),
    Variant("yolov5n", "yolov5n.yaml"),  # csp_wrc.yaml is yolov5.yaml row for row: the same layer indices and names
    Variant("yolov5-channel", "csp_wrc-n.yaml", "channel", "yolov5n"),
    Variant("yolov5-fast", "csp_wrc-n.yaml", "fast", "yolov5n"),
]
DEFAULT_VARIANTS = [v for v in VARIANTS if v.name.startswith(("yolo11", "yolov8"))]


def read_results(run_dir: Path) -> dict:
    """Per-epoch metrics and cumulative training seconds from an ultralytics run's ``results.csv``."""
    path = run_dir / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the training run did not finish an epoch")
    with open(path, newline="") as f:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if not rows:
        raise ValueError(f"{path}: no epochs recorded")
    curves = {name: [row[col] for row in rows] for name, col in METRICS.items() if col in rows[0]}
    return {**{name: curve[-1] for name, curve in curves.items()}, "train_s": rows[-1]["time"], "curves": curves}


def load_records(out: Path) -> list[dict]:
    """The finished runs recorded under ``out`` (first runs and reruns: see ``first_runs``)."""
    path = out / RECORDS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_name(variant: str, seed: int, attempt: int = 1) -> str:
    """The run's folder and log name: ``<variant>-s<seed>``, and ``-r<attempt>`` for a rerun."""
    return f"{variant}-s{seed}" + (f"-r{attempt}" if attempt > 1 else "")


def run(
    variants: list[Variant],
    seeds: list[int],
    data: str,
    train_args: dict,
    out: Path,
    progress=None,
    reruns: tuple[int, ...] = (),
):
    """Train every variant for every seed not yet recorded under ``out``; return all records.

    ``out`` holds one budget: runs recorded there with other ``data`` or ``train_args`` are an error, not reused.
    A failing run stops the ablation with the tail of its log, which is kept as ``out/<variant>-s<seed>.log``.
    Each seed in ``reruns`` is trained once more per variant (attempt 2, after all first runs), the same command.
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    budget, records = {"data": data, **train_args}, load_records(out)
    other = next((r for r in records if r.get("budget") != budget), None)
    if other:
        raise ValueError(
            f"{out / RECORDS}: run {other['variant']}-s{other['seed']} was trained with {other.get('budget')}, not "
            f"{budget}; use another output folder for another budget"
        )
    done = {(r["variant"], r["seed"], r.get("attempt", 1)) for r in records}
    todo = [(seed, v, 1) for seed in seeds for v in variants] + [(seed, v, 2) for seed in reruns for v in variants]
    todo = [(seed, v, attempt) for seed, v, attempt in todo if (v.name, seed, attempt) not in done]
    models = {v.name: v.model_yaml(out / "models") for v in variants}
    for seed, variant, attempt in progress(todo) if progress else todo:
        name = run_name(variant.name, seed, attempt)
        args = {**train_args, "model": models[variant.name], "data": data, "seed": seed, "deterministic": True}
        args |= {"project": str(out / "runs"), "name": name, "exist_ok": True, "plots": False}
        log = out / f"{name}.log"
        shutil.rmtree(out / "runs" / name, ignore_errors=True)  # an interrupted attempt: ultralytics would append to it
        start, cpu = time.perf_counter(), _children_cpu_s()
        with open(log, "w") as f:
            cmd = [str(Path(sys.executable).with_name("yolo")), "train", *(f"{k}={v}" for k, v in args.items())]
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        if code:
            tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
            raise RuntimeError(f"run {name} failed with exit code {code}; log {log}:\n{tail}")
        record = {"variant": variant.name, "seed": seed, "budget": budget, "wall_s": time.perf_counter() - start}
        record["cpu_s"] = _children_cpu_s() - cpu  # the run's processes, data loaders included
        if attempt > 1:
            record["attempt"] = attempt
        text = log.read_text(errors="replace")
        if found := TRANSFERRED.search(text):
            record["transferred"] = [int(found[1]), int(found[2])]  # ultralytics' count: tensors loaded / in model
        if found := REMAPPED.search(text):
            record["remapped"] = [int(found[1]), int(found[2])]  # classes whose output rows it took by class name
        record |= read_results(out / "runs" / name)
        with open(out / RECORDS, "a") as f:
            f.write(json.dumps(record) + "\n")
    return load_records(out)


def first_runs(records: list[dict]) -> list[dict]:
    """The records of each seed's first run (reruns left out)."""
    return [r for r in records if r.get("attempt", 1) == 1]


def rerun_spread(records: list[dict], metric: str) -> list[dict]:
    """Per rerun, its ``metric`` difference from the first run of the same variant and seed, at every epoch."""
    first = {(r["variant"], r["seed"]): r for r in first_runs(records)}
    rows = []
    for r in records:
        if r.get("attempt", 1) > 1 and (r["variant"], r["seed"]) in first:
            a, b = first[(r["variant"], r["seed"])]["curves"][metric], r["curves"][metric]
            rows.append({"variant": r["variant"], "seed": r["seed"], "attempt": r["attempt"],
                         "diffs": [y - x for x, y in zip(a, b)]})  # fmt: skip
    return rows


def transferred_tensors(run_dir: Path, checkpoint: str | Path) -> dict:
    """Which tensors of a run's model the checkpoint gave it, by ultralytics' rule (same name, same shape).

    Returns:
        (dict): ``layers``: {layer index: (transferred, total)}; ``new``: names of the model's tensors that the
            checkpoint lacks or has in another shape.
    """
    import torch

    def tensors(path):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        return {k: v.shape for k, v in (ckpt.get("ema") or ckpt["model"]).state_dict().items()}

    model, given = tensors(Path(run_dir) / "weights" / "last.pt"), tensors(checkpoint)
    layers, new = {}, []
    for name, shape in model.items():
        moved = given.get(name) == shape
        layer = int(name.split(".")[1]) if name.startswith("model.") and name.split(".")[1].isdigit() else -1
        done, total = layers.get(layer, (0, 0))
        layers[layer] = (done + moved, total + 1)
        if not moved:
            new.append(name)
    return {"layers": layers, "new": new}


def transfer_text(variant: str, found: dict, checkpoint: str | Path, remapped=None) -> str:
    """One line: the tensors per span of layers that came from the checkpoint, and the patterns of the fresh ones;
    ``remapped``: (classes, of) whose class-output rows ultralytics copied by class name."""
    spans = []
    for _, group in itertools.groupby(sorted(found["layers"].items()), key=lambda kv: kv[1][0] == kv[1][1]):
        group = list(group)
        first, last = group[0][0], group[-1][0]
        counts = [sum(c[i] for _, c in group) for i in (0, 1)]
        spans.append(f"{f'layer {first}' if first == last else f'layers {first}-{last}'}: {counts[0]} of {counts[1]}")
    done = sum(d for d, _ in found["layers"].values())
    total = sum(t for _, t in found["layers"].values())
    groups = {}  # names that differ only in numbers, shown as one pattern with * where the numbers differ
    for name in found["new"]:
        parts = name.split(".")
        groups.setdefault(tuple("#" if p.isdigit() else p for p in parts), []).append(parts)
    fresh = [
        f"`{'.'.join(c[0] if len(set(c)) == 1 else '*' for c in zip(*members))}`"
        + (f" x{len(members)}" if len(members) > 1 else "")
        for members in groups.values()
    ]
    line = (
        f"- `{variant}`: {done} of its {total} tensors from `{Path(checkpoint).name}` ({'; '.join(spans)}); "
        f"started as the seed gives them: {', '.join(fresh) or 'none'}"
    )
    if remapped:
        line += f"; then ultralytics copied the class-output rows of {remapped[0]} of the {remapped[1]} classes by name"
    return line


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Two-sided 95% quantiles of Student's t distribution for 1..30 degrees of freedom (1.96 beyond).
# fmt: off
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# fmt: on


def paired_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% paired t confidence interval (NaN bounds below two pairs)."""
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return mean, math.nan, math.nan
    half = (
        (T95[len(diffs) - 2] if len(diffs) <= len(T95) + 1 else 1.96) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    )
    return mean, mean - half, mean + half


def by_variant(records: list[dict]) -> dict[str, dict[int, dict]]:
    """First runs grouped as ``{variant: {seed: record}}``."""
    runs: dict[str, dict[int, dict]] = {}
    for r in first_runs(records):
        runs.setdefault(r["variant"], {})[r["seed"]] = r
    return runs


def paired_curves(records: list[dict], variant: Variant, metric: str = "mAP50-95") -> list[tuple[float, float, float]]:
    """Per epoch, the paired difference of ``variant`` from its baseline over the seeds both ran (paired_interval)."""
    runs = by_variant(records)
    mine, base = runs.get(variant.name, {}), runs.get(variant.baseline, {})
    seeds = sorted(set(mine) & set(base))
    if not seeds:
        return []
    epochs = min(len(r["curves"][metric]) for r in (*mine.values(), *base.values()))
    return [
        paired_interval([mine[s]["curves"][metric][e] - base[s]["curves"][metric][e] for s in seeds])
        for e in range(epochs)
    ]


def summarise(records: list[dict], variants: list[Variant], checkpoints=(2, 4), metric: str = "mAP50-95") -> list[dict]:
    """One row per variant with runs: ``metric`` after each checkpoint epoch and at the end, and training cost.

    Each point holds the mean and standard deviation over seeds and, for a variant with a baseline, the paired
    difference from it over the seeds both ran (same data order and, for the twins, the same initial convolutions):
    mean, 95% t interval, whether the interval excludes 0 (resolved) and in how many seeds the variant was ahead.
    """
    runs = by_variant(records)
    rows = []
    for variant in variants:
        mine, base = runs.get(variant.name, {}), runs.get(variant.baseline, {})
        if not mine:
            continue
        seeds = sorted(set(mine) & set(base))
        epochs = min(len(r["curves"][metric]) for r in mine.values())
        row = {"variant": variant.name, "baseline": variant.baseline, "runs": len(mine), "pairs": len(seeds)}
        row["points"] = {}
        for label, e in [*((f"epoch {c}", c) for c in checkpoints if c < epochs), ("final", epochs)]:
            values = [r["curves"][metric][e - 1] for r in mine.values()]
            point = {"epoch": e, "mean": statistics.mean(values), "std": _stdev(values)}
            diffs = [mine[s]["curves"][metric][e - 1] - base[s]["curves"][metric][e - 1] for s in seeds]
            if diffs:
                delta, low, high = paired_interval(diffs)
                point |= {"delta": delta, "low": low, "high": high, "gains": sum(d > 0 for d in diffs)}
                point["resolved"] = not (low <= 0 <= high) and not math.isnan(low)
            row["points"][label] = point
        # Cost in CPU seconds (the run's processes): unlike wall time, it does not depend on what else ran meanwhile.
        row["cpu_s"] = statistics.median(r["cpu_s"] for r in mine.values())
        if seeds:
            row["cpu ratio"] = statistics.median(mine[s]["cpu_s"] / base[s]["cpu_s"] for s in seeds)
        rows.append(row)
    return rows


def _stdev(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else math.nan


def _number(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def _delta(point: dict) -> str:
    if "delta" not in point:
        return "-"
    if math.isnan(point["low"]):
        return f"{point['delta']:+.3f}"
    text = f"{point['delta']:+.3f} [{point['low']:+.3f}, {point['high']:+.3f}]"
    return f"**{text}**" if point["resolved"] else text


METRIC_TEXT = {
    "COCO AP": "the official COCO AP (mAP50-95 by COCO's rules, cspdet.eval) of the validation split after each epoch",
    "COCO AP50": "the official COCO AP50 of the validation split after each epoch",
}


def default_metric(records: list[dict]) -> str:
    """The official COCO AP where every run has it (COCO-format data), else ultralytics' mAP50-95."""
    return "COCO AP" if records and all("COCO AP" in r["curves"] for r in records) else "mAP50-95"


def report(
    records: list[dict],
    variants: list[Variant],
    out: Path,
    img: Path,
    metric: str | None = None,
    checkpoints=(2, 4),
    tag: str = "",
) -> str:
    """The ablation's results in markdown, per family (a baseline and the variants compared with it), with plots
    written into ``img`` and linked as ``img/<tag><name>.png``; ``out`` is the ablation's folder (its runs)."""
    from cspdet.plotting import WRC_CSV, plot_ablation_curves, plot_paired_deltas, plot_wrc_weights

    first = first_runs(records)
    metric = metric or default_metric(first)
    rows = {row["variant"]: row for row in summarise(records, variants, checkpoints, metric)}
    budget = next(iter(records))["budget"]
    checkpoint = budget.get("pretrained")
    seeds = sorted({r["seed"] for r in first})
    cpu_h = sum(r.get("cpu_s", 0.0) for r in records) / 3600
    start = (
        f"every variant starts from the same checkpoint, `{Path(checkpoint).name}`, and what it lacks starts as the "
        "seed gives it"
        if checkpoint
        else "the twins start from the baseline's own initial convolutions"
    )
    reruns = len(records) - len(first)
    meaning = METRIC_TEXT.get(metric, "ultralytics' validation metric after each epoch")
    lines = [
        f"{len(first)} runs: seeds {seeds}" + (f", and {reruns} reruns of a seed" if reruns else "") + "; budget per "
        f"run `{' '.join(f'{k}={v}' for k, v in budget.items())}`; {cpu_h:.1f} CPU hours in all (training, "
        f"validation and data loading processes). {metric} is {meaning}. Paired Δ: per seed, variant minus its "
        f"baseline (same data order, and {start}), mean and 95% paired t interval over seeds; **bold**: the interval "
        "excludes 0 (a resolved difference).",
    ]
    if checkpoint:
        lines.append("Tensors transferred from the checkpoint (same name and shape, as ultralytics loads them):")
        transfers = []
        for v in variants:
            run_dir = Path(out) / "runs" / run_name(v.name, seeds[0])
            if v.name in rows and (run_dir / "weights" / "last.pt").is_file():
                found = transferred_tensors(run_dir, checkpoint)
                remapped = by_variant(records)[v.name][seeds[0]].get("remapped")
                transfers.append(transfer_text(v.name, found, checkpoint, remapped))
        lines.append("\n".join(transfers))
    families = [v for v in variants if v.baseline is None and v.name in rows]
    for base in families:
        members = [base, *(v for v in variants if v.baseline == base.name and v.name in rows)]
        points = list(rows[base.name]["points"])
        absolute = [
            [
                v.name,
                rows[v.name]["runs"],
                *(f"{_number(p['mean'])} ± {_number(p['std'])}" for p in rows[v.name]["points"].values()),
                f"{rows[v.name]['cpu_s']:.0f}",
            ]
            for v in members
        ]
        paired = [
            [
                v.name,
                rows[v.name]["pairs"],
                *(_delta(p) for p in rows[v.name]["points"].values()),
                f"{rows[v.name]['points']['final'].get('gains', 0)}/{rows[v.name]['pairs']}",
                f"{rows[v.name].get('cpu ratio', math.nan):.3f}",
            ]
            for v in members[1:]
        ]
        final = rows[base.name]["points"]["final"]["epoch"]
        labels = [p.replace("final", f"final (epoch {final})") for p in points]
        family = [r for r in first if r["variant"] in {v.name for v in members}]
        curves = plot_ablation_curves(family, img / f"ablation_{tag}{base.name}.png", metric)
        deltas = {v.name: paired_curves(records, v, metric) for v in members[1:]}
        delta_png = plot_paired_deltas(deltas, img / f"ablation_{tag}{base.name}_delta.png", metric)
        halves = [(p["high"] - p["low"]) / 2 for v in members[1:] if "low" in (p := rows[v.name]["points"]["final"])]
        lines += [
            f"### {base.name} and its weighted twins",
            markdown_table(["variant", "seeds", *(f"{metric} {p}" for p in labels), "CPU s (median)"], absolute),
            markdown_table(
                ["variant", "pairs", *(f"Δ {p} [95% CI]" for p in labels), "seeds ahead (final)", "CPU time ratio"],
                paired,
            ),
        ]
        if halves and not any(map(math.isnan, halves)):
            lines.append(
                f"Resolution: the final 95% intervals reach ±{min(halves):.3f} to ±{max(halves):.3f} around their "
                f"means, so a true difference of about that size or less in {metric} can go unresolved here."
            )
        lines.append(
            f"![{metric} per epoch]({img.name}/{curves.name}) ![paired difference]({img.name}/{delta_png.name})"
        )
        for v in members[1:]:
            csv_path = Path(out) / "runs" / run_name(v.name, seeds[0]) / WRC_CSV
            if csv_path.is_file():
                png = plot_wrc_weights(csv_path, img / f"wrc_weights_{tag}{v.name}.png")
                lines.append(f"![learned alpha and beta, {v.name}, seed {seeds[0]}]({img.name}/{png.name})")
    spread = rerun_spread(records, metric)
    if spread:
        lines.append(_rerun_text(spread, metric, checkpoints))
    return "\n\n".join(lines)


def _rerun_text(spread: list[dict], metric: str, checkpoints) -> str:
    """The reruns against their first runs: identical, or how far apart, per epoch checkpoint and at the end."""
    epochs = min(len(r["diffs"]) for r in spread)
    at = [*(c for c in checkpoints if c < epochs), epochs]
    table = markdown_table(
        ["run", *(f"Δ {metric} epoch {e}" for e in at), "largest abs Δ over epochs"],
        [
            [run_name(r["variant"], r["seed"], r["attempt"]), *(f"{r['diffs'][e - 1]:+.4f}" for e in at),
             f"{max(map(abs, r['diffs'])):.4f}"]
            for r in spread
        ],
    )  # fmt: skip
    largest = max(max(map(abs, r["diffs"])) for r in spread)
    verdict = (
        "The reruns reproduce their first runs exactly at every epoch: the same command with the same seed gives the "
        "same numbers."
        if largest == 0
        else f"The same command with the same seed lands up to {largest:.4f} {metric} away from itself. That "
        "run-to-run spread is part of every run, so it is already inside the spread of the paired differences "
        "over seeds, and hence inside the intervals above; it adds no separate term."
    )
    return f"**Run to run** (the same command and seed, rerun; Δ = rerun minus first run):\n\n{table}\n\n{verdict}"
