"""Ablation of the shortcut weighting: train model variants over seeds with the `yolo` CLI, then compare them.

Each variant is a model YAML, with its top-level `wrc` replaced where the variant says. By default: stock yolo11n
against yolo11_wrc-n with channel, fast, rezero and layerscale weights, and stock yolov8n against yolov8_wrc-n with
channel weights; every twin starts from its stock model's own initial convolutions for the same seed, or, with
--pretrained, every variant from the same checkpoint. Runs go seed by seed through all variants, each in a fresh
`yolo train` process, and each finished run is appended to OUT/runs.jsonl at once: an interrupted ablation resumes
where it stopped. The report gives the validation mAP (the official COCO AP for COCO-format data) after the
--checkpoints epochs and the last, the paired difference from each baseline with its 95% t interval, the training
cost, the tensors transferred from --pretrained, how far --rerun seeds land from their first runs, and plots; it goes
into a markdown file (default docs/results.md if the current folder has one) and its img/ folder.

    cspdet ablate                                            # 8 seeds, 10 epochs on shapes (about 4 CPU hours)
    cspdet ablate --seeds 0 1 --epochs 2 --out runs/quick    # a quick look
    cspdet ablate --report --out runs/ablation               # report what is recorded, train nothing
    cspdet ablate --variants csp-plain csp-channel           # the YOLOv5-style csp_wrc model instead
    cspdet ablate --variants yolov5-channel yolov5-fast --data bccd.yaml --recipe bccd --imgsz 320 \\
        --pretrained yolov5n-coco.pt --section bccd-pretrained --out runs/bccd-pretrained   # fine-tuning
    cspdet ablate --scale s --recipe ultralytics --data coco.yaml --epochs 100 --imgsz 640 --batch 64 --device 0
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

DEFAULT_DOC = Path("docs/results.md")
SECTION = "ablation"  # the shapes ablation's section of docs/results.md


def add_arguments(parser):
    parser.add_argument("--variants", nargs="+", help="variant names (default: the YOLO11 and YOLOv8 set)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--data", default="shapes.yaml", help="data YAML (default: the embedded shapes dataset)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--scale", choices=list("nslmx"), default="n", help="model scale of every variant")
    # fmt: off
    parser.add_argument("--recipe", choices=["shapes", "bccd", "ultralytics"], default="shapes",
                        help="shapes: AdamW lr0=0.002, no mosaic, nbs=batch (small data on a CPU); bccd: the same "
                             "with mosaic until the last 2 epochs; ultralytics: its default hyperparameters (COCO)")
    parser.add_argument("--pretrained", type=Path, help="checkpoint that every variant starts from (yolo train "
                        "pretrained=); tensors whose name and shape match are transferred")
    parser.add_argument("--rerun", type=int, nargs="+", default=[], metavar="SEED",
                        help="train these seeds once more per variant: how far the same command lands from itself")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[2, 4], metavar="EPOCH",
                        help="epochs reported besides the last (default: 2 4)")
    parser.add_argument("--metric", help="reported metric: mAP50-95, mAP50, COCO AP, COCO AP50 (default: COCO AP for "
                        "COCO-format data, else mAP50-95)")
    parser.add_argument("--section", default=SECTION,
                        help=f"section of the markdown file that the report replaces (default: {SECTION})")
    # fmt: on
    parser.add_argument("--device", help="as yolo train device= (default: ultralytics' choice)")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help="one folder per budget")
    parser.add_argument("--report", action="store_true", help="only report the runs recorded in --out")
    parser.add_argument("--doc", type=Path, help="markdown file for the report (default: docs/results.md if any)")


def run(args) -> int:
    from ultralytics.utils import TQDM

    from cspdet.research import ablation
    from cspdet.research.report import write_section

    known = {v.name: v for v in ablation.VARIANTS}
    names = args.variants or [v.name for v in ablation.DEFAULT_VARIANTS]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.metric and args.metric not in ablation.METRICS:
        raise ValueError(f"--metric {args.metric}: choose from {', '.join(ablation.METRICS)}")
    names += [known[n].baseline for n in names if known[n].baseline and known[n].baseline not in names]
    variants = [v.at_scale(args.scale) for v in ablation.VARIANTS if v.name in names]  # baselines first
    if args.report:
        records = ablation.load_records(args.out)
        if not records:
            raise FileNotFoundError(f"{args.out / ablation.RECORDS}: no runs recorded")
    else:
        train_args = {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch}
        train_args |= ablation.RECIPES[args.recipe](args.batch)
        if args.device is not None:
            train_args["device"] = args.device
        if args.pretrained:
            if not args.pretrained.is_file():
                raise FileNotFoundError(f"--pretrained {args.pretrained}: no such checkpoint")
            train_args["pretrained"] = str(args.pretrained.resolve())
        progress = lambda todo: TQDM(todo, desc="ablation runs")  # noqa: E731
        records = ablation.run(variants, args.seeds, args.data, train_args, args.out, progress, tuple(args.rerun))
    records = [r for r in records if r["variant"] in names and r["seed"] in args.seeds]
    doc = args.doc or (DEFAULT_DOC if DEFAULT_DOC.is_file() else None)
    img = (doc.parent if doc else args.out) / "img"
    img.mkdir(parents=True, exist_ok=True)
    tag = "" if args.section == SECTION else f"{args.section}_"
    body = ablation.report(records, variants, args.out, img, args.metric, tuple(args.checkpoints), tag)
    print(body)
    if doc:
        command = shlex.join(["cspdet", *sys.argv[1:]])
        write_section(doc, args.section, title(records, variants), f"Command: `{command}`\n\n{body}")
    return 0


def title(records: list[dict], variants) -> str:
    """The section title: the families compared, the data and the start."""
    from cspdet.research.ablation import by_variant

    budget = records[0]["budget"]
    ran = by_variant(records)
    families = [v.name for v in variants if v.baseline is None and v.name in ran]
    data = Path(budget["data"]).stem
    start = f", fine-tuned from {Path(budget['pretrained']).name}" if budget.get("pretrained") else ""
    if data == "shapes" and not start:  # the section as it has always been titled
        return "Ablation: weighted shortcuts on YOLO11 and YOLOv8 (shapes)"
    return f"Ablation: weighted shortcuts against {', '.join(families)} ({data}{start or ', from scratch'})"
