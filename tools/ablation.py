"""Shortcut-weighting ablation on the embedded shapes dataset: every variant, several seeds, one epoch budget.

Trains csp_wrc-n with scalar, per-channel, ReZero and normalised ("fast") weights against its no-WRC twin
(csp_plain-n) and yolo11n, then writes the table into docs/results.md and the plots into docs/img/.
Interrupted runs resume: finished runs are kept in OUT/runs.jsonl.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

from benchdoc import markdown_table, update_section
from ultralytics.utils import TQDM

from cspdet import ablation
from cspdet.plotting import plot_ablation_curves, plot_wrc_weights

DOCS = Path(__file__).resolve().parents[1] / "docs"


def fmt(mean: float, std: float) -> str:
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def delta(row: dict, metric: str) -> str:
    """Paired change from plain: mean ± std over seeds, and the seeds where it was a gain."""
    if row["variant"] == "plain":
        return "(baseline)"
    if not row["pairs"]:
        return "n/a"
    std = row[f"{metric} delta std"]
    spread = "" if math.isnan(std) else f" ± {std:.3f}"
    return f"{row[f'{metric} delta']:+.3f}{spread} ({row[f'{metric} gains']}/{row['pairs']} up)"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=[v.name for v in ablation.DEFAULT_VARIANTS])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", default="datasets/shapes.yaml")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", help="as yolo train device= (default: ultralytics' choice)")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help="one folder per budget")
    parser.add_argument("--docs", type=Path, default=DOCS, help="folder for results.md and img/")
    args = parser.parse_args()

    known = {v.name: v for v in ablation.DEFAULT_VARIANTS}
    unknown = sorted(set(args.variants) - set(known))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    variants = [known[name] for name in args.variants]
    train_args = {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch, "nbs": args.batch, "mosaic": 0}
    train_args |= {"warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.002, "workers": 2}
    if args.device is not None:
        train_args["device"] = args.device
    progress = lambda todo: TQDM(todo, desc="ablation runs")  # noqa: E731
    records = ablation.run(variants, args.seeds, args.data, train_args, args.out, progress)
    records = [r for r in records if r["variant"] in args.variants and r["seed"] in args.seeds]

    img = args.docs / "img"
    img.mkdir(parents=True, exist_ok=True)
    curves = plot_ablation_curves(records, img / "ablation_map.png")
    weights = []
    for v in variants:
        csv_path = args.out / "runs" / f"{v.name}-s{args.seeds[0]}" / "wrc_weights.csv"
        if csv_path.is_file():
            weights.append(plot_wrc_weights(csv_path, img / f"wrc_weights_{v.name}.png"))
            shutil.copyfile(csv_path, img / f"wrc_weights_{v.name}.csv")

    rows = ablation.summarise(records)
    header = ["variant", "runs", "mAP50-95", "paired Δ mAP50-95", "mAP50", "paired Δ mAP50", "train s (median)"]
    table = markdown_table(
        header,
        [
            [
                r["variant"],
                r["runs"],
                fmt(r["mAP50-95"], r["mAP50-95 std"]),
                delta(r, "mAP50-95"),
                fmt(r["mAP50"], r["mAP50 std"]),
                delta(r, "mAP50"),
                f"{r['train_s']:.0f}",
            ]
            for r in rows
        ],
    )
    per_run = markdown_table(
        ["variant", "seed", "mAP50-95", "mAP50", "train s"],
        [
            [r["variant"], r["seed"], f"{r['mAP50-95']:.3f}", f"{r['mAP50']:.3f}", f"{r['train_s']:.0f}"]
            for r in records
        ],
    )
    budget = " ".join(f"{k}={v}" for k, v in train_args.items())
    body = (
        f"Budget per run: `{budget}`, seeds {args.seeds}, data `{args.data}`. Metrics are the last epoch's "
        "validation (ultralytics' mAP), mean ± standard deviation over seeds. Paired Δ: per seed, variant minus "
        "plain (same data order; same initial convolutions for the csp_wrc variants), mean ± std, and in how many "
        "seeds the variant was ahead. Train s is ultralytics' own training time (results.csv `time`).\n\n"
        f"{table}\n\n![mAP per epoch](img/{curves.name})\n\n"
        + "".join(f"![{p.stem}](img/{p.name})\n" for p in weights)
        + f"\n<details><summary>Every run</summary>\n\n{per_run}\n\n</details>"
    )
    print(update_section("ablation", "Ablation: shortcut weighting on shapes", body, doc=args.docs / "results.md"))


if __name__ == "__main__":
    main()
