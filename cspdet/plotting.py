"""Plots of what the weighted shortcuts learn."""

from __future__ import annotations

import csv
import os
import tempfile
from collections import defaultdict
from pathlib import Path


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
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    os.replace(tmp, out)
    return out
