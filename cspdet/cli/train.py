"""Train with ultralytics' stock trainer on this machine, or on several machines at once through torchrun.

    cspdet train [--nnodes N] [--nproc-per-node G] [--rdzv-endpoint HOST:PORT] [--rdzv-id ID] [--dry-run] ARGS

ARGS are `yolo train` arguments (model=... data=... epochs=... batch=... device=...). Without --nnodes and
--nproc-per-node this is `yolo train ARGS`, where ultralytics spawns its own workers for device=0,1 on one machine.
With them, it runs torchrun with c10d rendezvous around the stock `yolo train ARGS`: run the same command on every
node. batch= is then the global batch, split over all processes of all nodes; --nproc-per-node defaults to the
number of GPUs in device= (1 for device=cpu, every visible GPU when device= is not given). Give the options before or
after ARGS, not between them. See docs/scale.md (SLURM, Kubernetes, NCCL).

Examples:
    cspdet train model=csp_wrc-n.yaml data=shapes.yaml epochs=10 imgsz=160 device=0
    cspdet train --nnodes 2 --rdzv-endpoint node0:29500 model=csp_wrc-s.yaml data=coco.yaml batch=256 device=0,1,2,3
    cspdet train --nproc-per-node 2 model=csp_wrc-n.yaml data=shapes.yaml device=cpu batch=16   # CPU, gloo
    cspdet train --nnodes 2 --rdzv-endpoint node0:29500 resume model=runs/detect/train/weights/last.pt  # resume
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("args", nargs="*", metavar="ARG", help="yolo train arguments, key=value")
    parser.add_argument("--nnodes", type=int, help="number of machines (torchrun --nnodes)")
    parser.add_argument("--nproc-per-node", type=int, help="processes on this machine, one per device in device=")
    parser.add_argument("--rdzv-endpoint", help="HOST:PORT on one of the nodes, the same on every node")
    parser.add_argument("--rdzv-id", help="job id, the same on every node (torchrun --rdzv-id; default: none)")
    parser.add_argument("--join-timeout", type=float, help="seconds each process waits for all others at start (600)")
    parser.add_argument("--timeout", type=float, help="seconds any process waits in a collective operation (10800)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")


def _argument(name: str, args: list[str]) -> str | None:
    """The value of the last ``name=`` argument, or None."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    return values[-1] if values else None


def _processes_per_node(device: str | None) -> int:
    """One process per device in ``device`` (1 on the CPU), or per visible GPU when ``device`` is not given."""
    if device is None or device.strip() in {"", "None"}:
        import torch

        return max(torch.cuda.device_count(), 1)
    if device.strip().lower() in {"cpu", "mps"}:
        return 1
    return len(device.strip("[]").split(","))


def command(args) -> list[str]:
    """The command that runs ``yolo train`` with ``args.args``, under torchrun if args ask for several processes."""
    import shutil
    import sys
    from pathlib import Path

    from cspdet.errors import CspdetError

    yolo = shutil.which("yolo", path=str(Path(sys.executable).parent)) or shutil.which("yolo")
    if yolo is None:
        raise CspdetError("the yolo command of ultralytics is not on PATH")
    if args.nnodes is None and args.nproc_per_node is None:
        return [yolo, "train", *args.args]
    nnodes = args.nnodes or 1
    if nnodes > 1 and not args.rdzv_endpoint:
        raise CspdetError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT (one node's address, the same on all)")
    nproc = args.nproc_per_node or _processes_per_node(_argument("device", args.args))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc)]
    if args.rdzv_endpoint:
        torchrun += ["--rdzv-backend", "c10d", "--rdzv-endpoint", args.rdzv_endpoint]
    else:
        torchrun.append("--standalone")
    if args.rdzv_id:
        torchrun += ["--rdzv-id", args.rdzv_id]
    return [*torchrun, yolo, "train", *args.args]


def run(args) -> int:
    import os
    import shlex
    import subprocess
    from pathlib import Path

    from cspdet.imports import find_yaml_imports

    model = _argument("model", args.args)
    if model and Path(model).suffix in {".yaml", ".yml"} and Path(model).is_file():
        find_yaml_imports(model)  # a missing one fails here, in one line, not in every process
    cmd = command(args)
    timeouts = {"CSPDET_DDP_JOIN_TIMEOUT": args.join_timeout, "CSPDET_DDP_TIMEOUT": args.timeout}
    env = {name: str(value) for name, value in timeouts.items() if value is not None}
    if args.dry_run:
        print(" ".join([*(f"{k}={v}" for k, v in env.items()), shlex.join(cmd)]))
        return 0
    return subprocess.run(cmd, env={**os.environ, **env}).returncode
