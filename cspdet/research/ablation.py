"""Ablation of the shortcut weighting: train model variants over seeds with the ``yolo`` CLI and summarise them.

Each variant is a model YAML, optionally with its top-level ``wrc`` key replaced. Runs go seed by seed through all
variants, so that drift in a shared machine's speed spreads over every variant, and each finished run is appended to
``runs.jsonl`` at once: an interrupted ablation resumes where it stopped.
"""

from __future__ import annotations

import csv
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
    "ultralytics": lambda batch: {},  # ultralytics' own defaults, as for COCO
}  # fmt: skip
METRICS = {"mAP50-95": "metrics/mAP50-95(B)", "mAP50": "metrics/mAP50(B)"}


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
    curves = {name: [row[col] for row in rows] for name, col in METRICS.items()}
    return {**{name: curve[-1] for name, curve in curves.items()}, "train_s": rows[-1]["time"], "curves": curves}


def load_records(out: Path) -> list[dict]:
    """The finished runs recorded under ``out``."""
    path = out / RECORDS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(variants: list[Variant], seeds: list[int], data: str, train_args: dict, out: Path, progress=None):
    """Train every variant for every seed not yet recorded under ``out``; return all records.

    ``out`` holds one budget: runs recorded there with other ``data`` or ``train_args`` are an error, not reused.
    A failing run stops the ablation with the tail of its log, which is kept as ``out/<variant>-s<seed>.log``.
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
    done = {(r["variant"], r["seed"]) for r in records}
    todo = [(seed, v) for seed in seeds for v in variants if (v.name, seed) not in done]
    models = {v.name: v.model_yaml(out / "models") for v in variants}
    for seed, variant in progress(todo) if progress else todo:
        name = f"{variant.name}-s{seed}"
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
        record |= read_results(out / "runs" / name)
        with open(out / RECORDS, "a") as f:
            f.write(json.dumps(record) + "\n")
    return load_records(out)


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
    """Records grouped as ``{variant: {seed: record}}``."""
    runs: dict[str, dict[int, dict]] = {}
    for r in records:
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


def report(records: list[dict], variants: list[Variant], out: Path, img: Path, metric: str = "mAP50-95") -> str:
    """The ablation's results in markdown, per family (a baseline and the variants compared with it), with plots
    written into ``img`` and linked as ``img/<name>.png``; ``out`` is the ablation's folder (its runs' α/β logs)."""
    from cspdet.plotting import WRC_CSV, plot_ablation_curves, plot_paired_deltas, plot_wrc_weights

    rows = {row["variant"]: row for row in summarise(records, variants, metric=metric)}
    budget = next(iter(records))["budget"]
    seeds = sorted({r["seed"] for r in records})
    cpu_h = sum(r.get("cpu_s", 0.0) for r in records) / 3600
    lines = [
        f"{len(records)} runs: seeds {seeds}; budget per run `{' '.join(f'{k}={v}' for k, v in budget.items())}`; "
        f"{cpu_h:.1f} CPU hours in all (training, validation and data loading processes). {metric} is ultralytics' "
        "validation metric after each epoch. Paired Δ: per seed, variant minus its baseline (same data order, and "
        "the twins start from the baseline's own initial convolutions), mean and 95% paired t interval over seeds; "
        "**bold**: the interval excludes 0 (a resolved difference).",
    ]
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
        family = [r for r in records if r["variant"] in {v.name for v in members}]
        curves = plot_ablation_curves(family, img / f"ablation_{base.name}.png", metric)
        deltas = {v.name: paired_curves(records, v, metric) for v in members[1:]}
        delta_png = plot_paired_deltas(deltas, img / f"ablation_{base.name}_delta.png", metric)
        lines += [
            f"### {base.name} and its weighted twins",
            markdown_table(["variant", "seeds", *(f"{metric} {p}" for p in labels), "CPU s (median)"], absolute),
            markdown_table(
                ["variant", "pairs", *(f"Δ {p} [95% CI]" for p in labels), "seeds ahead (final)", "CPU time ratio"],
                paired,
            ),
            f"![{metric} per epoch]({img.name}/{curves.name}) ![paired difference]({img.name}/{delta_png.name})",
        ]
        for v in members[1:]:
            csv_path = Path(out) / "runs" / f"{v.name}-s{seeds[0]}" / WRC_CSV
            if csv_path.is_file():
                png = plot_wrc_weights(csv_path, img / f"wrc_weights_{v.name}.png")
                lines.append(f"![learned alpha and beta, {v.name}, seed {seeds[0]}]({img.name}/{png.name})")
    return "\n\n".join(lines)
