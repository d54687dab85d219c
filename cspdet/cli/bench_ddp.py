"""Per-step cost of training in 2 gloo DDP processes on the loopback, against one process (CPU).

    cspdet bench ddp [--model csp_wrc-n.yaml] [--imgsz 160] [--batch 8] [--steps 5] [--rounds 4]

Times one training step (forward with the detection loss, backward, SGD step) of the same per-process batch in one
process, in 2 processes side by side without communication, in 2 DistributedDataParallel processes over gloo on
127.0.0.1, and the all-reduce of the gradients alone; every process uses one thread. The communication overhead of a
step is DDP minus side by side. One machine cannot show a multi-node speed-up: see docs/scale.md.
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--model", default="csp_wrc-n.yaml", help="model YAML")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8, help="images per process and step")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per kind and round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, alternating the order of the kinds")


def run(args, doc) -> int:
    import os

    import torch

    from cspdet.research.benchdoc import markdown_table, update_section
    from cspdet.research.ddp_bench import gloo_overhead

    r = gloo_overhead(args.model, args.imgsz, args.batch, args.steps, args.rounds)
    ms = {k: r[k] * 1e3 for k in ("alone", "side by side", "ddp", "allreduce")}
    overhead = ms["ddp"] - ms["side by side"]
    header = ["model", "parameters", "gradients", "imgsz", "batch per process", "1 process"]
    header += ["2 processes side by side", "2 processes DDP (gloo)", "communication overhead", "all-reduce alone"]
    row = [args.model, f"{r['parameters'] / 1e6:.2f} M", f"{r['parameters'] * 4 / 2**20:.1f} MB", args.imgsz]
    row += [args.batch, f"{ms['alone']:.0f} ms", f"{ms['side by side']:.0f} ms", f"{ms['ddp']:.0f} ms"]
    row += [f"{overhead:.0f} ms ({overhead / ms['side by side']:+.0%})", f"{ms['allreduce']:.1f} ms"]
    table = markdown_table(header, [row])
    print(table)
    if doc:
        body = (
            f"Time per training step (forward with the detection loss, backward, SGD step), medians of {args.rounds} "
            f"rounds x {args.steps} steps; {os.cpu_count()} CPU cores shared with other work, torch "
            f"{torch.__version__}, one thread per process, 127.0.0.1. Side by side: both processes train without "
            "communicating (their CPU contention); the communication overhead is DDP minus side by side. One machine "
            "cannot show a multi-node speed-up (docs/scale.md).\n\n" + table
        )
        update_section(doc, "ddp", "Training across processes: gloo overhead on the loopback", body)
        print(f"Wrote the table into {doc}")
    return 0
