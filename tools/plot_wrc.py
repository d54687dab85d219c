"""Plot the learned alpha/beta of a training run: python tools/plot_wrc.py runs/detect/train [--out wrc.png]."""

import argparse
from pathlib import Path

from cspdet.plotting import plot_wrc_weights

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a run directory (with wrc_weights.csv) or the CSV itself")
    parser.add_argument("--out", type=Path, help="PNG to write (default: next to the CSV)")
    args = parser.parse_args()
    csv_path = args.run / "wrc_weights.csv" if args.run.is_dir() else args.run
    if not csv_path.is_file():
        raise SystemExit(f"{csv_path}: not found; cspdet writes wrc_weights.csv into runs of models with WRC")
    print(plot_wrc_weights(csv_path, args.out))
