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


def reports(args) -> list:
    from cspdet.research.ddp_bench import gloo_report

    return [gloo_report(args.model, args.imgsz, args.batch, args.steps, args.rounds)]
