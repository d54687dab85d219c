"""Plot the learned alpha/beta of every weighted shortcut of a training run, epoch by epoch.

    cspdet plot-wrc runs/detect/train [--out wrc.png]

Reads the run's wrc_weights.csv (written by every training of a model with weighted shortcuts) and writes a PNG next
to it, or to --out.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser):
    parser.add_argument("run", type=Path, help="a run directory (with wrc_weights.csv) or the CSV itself")
    parser.add_argument("--out", type=Path, help="PNG to write (default: next to the CSV)")


def run(args) -> int:
    from cspdet.plotting import WRC_CSV, plot_wrc_weights

    csv_path = args.run / WRC_CSV if args.run.is_dir() else args.run
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: not found; cspdet writes {WRC_CSV} into runs of models with WRC")
    print(plot_wrc_weights(csv_path, args.out))
    return 0
