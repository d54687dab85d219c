"""Plots: what the weighted shortcuts learn, and the ablation's accuracy curves and paired differences."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path

from cspdet.files import atomic_write

WRC_CSV = "wrc_weights.csv"  # alpha/beta per layer per epoch, written into every run of a model with WRC


def plot_wrc_weights(csv_path: str | Path, out: str | Path | None = None) -> Path:
    """Plot alpha and beta of every weighted shortcut over the epochs of a ``wrc_weights.csv``; return the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv_path = Path(csv_path)
    series = defaultdict(lambda: ([], [], []))  # layer -> (epochs, alphas, betas)
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                epochs, alphas, betas = series[row["layer"]]
                epochs.append(int(row["epoch"]))
                alphas.append(float(row["alpha"]))
                betas.append(float(row["beta"]))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{csv_path}: row {row} is not 'epoch,layer,alpha,beta' ({e})") from e
    if not series:
        raise ValueError(f"{csv_path}: no rows")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharex=True, tight_layout=True)
    colors = plt.cm.viridis([i / max(len(series) - 1, 1) for i in range(len(series))])
    for color, (layer, (epochs, alphas, betas)) in zip(colors, series.items()):
        axes[0].plot(epochs, alphas, color=color, marker="o", ms=3, label=layer.removeprefix("model."))
        axes[1].plot(epochs, betas, color=color, marker="o", ms=3)
    for ax, name in zip(axes, ("alpha (residual branch)", "beta (shortcut)")):
        ax.set(title=f"effective {name}", xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    out = Path(out) if out else csv_path.with_suffix(".png")
    return _save(fig, out, dpi=150)


def plot_ablation_curves(records: list[dict], out: str | Path, metric: str = "mAP50-95") -> Path:
    """Plot ``metric`` over epochs per variant of cspdet.ablation records: the seed mean, the min-max band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), tight_layout=True)
    for name in dict.fromkeys(r["variant"] for r in records):
        curves = [r["curves"][metric] for r in records if r["variant"] == name]
        epochs = range(1, min(map(len, curves)) + 1)
        per_epoch = [[c[e - 1] for c in curves] for e in epochs]
        ax.plot(epochs, [statistics.mean(v) for v in per_epoch], marker="o", ms=3, label=f"{name} (n={len(curves)})")
        ax.fill_between(epochs, [min(v) for v in per_epoch], [max(v) for v in per_epoch], alpha=0.15)
    ax.set(xlabel="epoch", ylabel=f"val {metric}", title=f"{metric} per epoch, mean over seeds (band: min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(out), dpi=130)


def plot_paired_deltas(series: dict[str, list[tuple[float, float, float]]], out: str | Path, metric: str) -> Path:
    """Plot, per variant, the paired difference from its baseline per epoch: mean line and 95% interval band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), tight_layout=True)
    ax.axhline(0, color="black", lw=0.8)
    for name, points in series.items():
        epochs = range(1, len(points) + 1)
        mean, low, high = zip(*points)
        ax.plot(epochs, mean, marker="o", ms=3, label=name)
        ax.fill_between(epochs, low, high, alpha=0.15)
    ax.set(
        xlabel="epoch", ylabel=f"paired Δ val {metric}", title=f"{metric}: variant - baseline, mean and 95% interval"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(out), dpi=130)


def _save(fig, out: Path, dpi: int) -> Path:
    """Write ``fig`` to the PNG ``out`` through a temporary file, so that no half-written plot is left; close it."""
    import matplotlib.pyplot as plt

    with atomic_write(out, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    plt.close(fig)
    return out
