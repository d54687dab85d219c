"""Ablation of the shortcut weighting: train model variants over seeds with the ``yolo`` CLI and summarise them.

Each variant is a model YAML, optionally with its top-level ``wrc`` key replaced. Runs go seed by seed through all
variants, so that drift in a shared machine's speed spreads over every variant, and each finished run is appended to
``runs.jsonl`` at once: an interrupted ablation resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from cspdet.files import atomic_write
from cspdet.integration.configs import find_model_yaml

RECORDS = "runs.jsonl"
METRICS = {"mAP50-95": "metrics/mAP50-95(B)", "mAP50": "metrics/mAP50(B)"}


@dataclass(frozen=True)
class Variant:
    """A model to train: ``model`` is a YAML name (scale suffix allowed); ``wrc`` replaces its top-level ``wrc``;
    ``baseline`` names the variant it is compared with, seed by seed (None for a baseline)."""

    name: str
    model: str
    wrc: object = None
    baseline: str | None = None

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


def summarise(records: list[dict], baseline: str = "plain") -> list[dict]:
    """Per variant: mean and standard deviation of each metric, median train time, and the paired change from
    ``baseline``: mean and standard deviation over the seeds both ran of (variant - baseline), and how many were gains.

    Pairing by seed compares runs with the same data order and, for models that differ only in the shortcut
    weighting, the same initial convolutions.
    """
    by_variant: dict[str, dict[int, dict]] = {}
    for r in records:
        by_variant.setdefault(r["variant"], {})[r["seed"]] = r
    base = by_variant.get(baseline, {})
    rows = []
    for name, runs in by_variant.items():
        row = {"variant": name, "runs": len(runs), "train_s": statistics.median(r["train_s"] for r in runs.values())}
        row["pairs"] = sum(seed in base for seed in runs)
        for metric in METRICS:
            values = [r[metric] for r in runs.values()]
            diffs = [r[metric] - base[seed][metric] for seed, r in runs.items() if seed in base]
            row[metric], row[f"{metric} std"] = statistics.mean(values), _stdev(values)
            row[f"{metric} delta"] = statistics.mean(diffs) if diffs else float("nan")
            row[f"{metric} delta std"], row[f"{metric} gains"] = _stdev(diffs), sum(d > 0 for d in diffs)
        rows.append(row)
    return rows


def _stdev(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")
