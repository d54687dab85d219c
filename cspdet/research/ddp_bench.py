"""What training across processes costs, and whether it works: gloo's per-step overhead on the loopback, and the
torchrun check that runs the stock trainer as one node of 2 processes and as 2 nodes of 1 process.

The overhead benchmark times one training step (forward with the detection loss, backward, SGD step) of the same
per-process batch four ways, in 2 processes on 127.0.0.1 of one thread each: in one process while the other idles
("alone"), in both processes at once without communication ("side by side", the CPU contention of two processes),
in both as DistributedDataParallel over gloo ("ddp"), and an all-reduce of the gradients alone. The communication
overhead of a step is ddp minus side by side. Rounds alternate the order of the four kinds.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ultralytics.utils import LOGGER

from cspdet.research.report import Report, Table

# ultralytics' `yolo` command, with cspdet imported first: also where packages sit on PYTHONPATH (no cspdet.pth)
YOLO_CLI = [sys.executable, "-c", "import sys, cspdet; from ultralytics.cfg import entrypoint; sys.exit(entrypoint())"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(batch: int, imgsz: int, nc: int, seed: int) -> dict:
    """A detection batch of random images with 3 random boxes each, in ultralytics' training batch format."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.rand(batch * 3, 4, generator=g) * 0.4 + torch.tensor([0.3, 0.3, 0.1, 0.1])
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
        "cls": torch.randint(0, nc, (batch * 3, 1), generator=g).float(),
        "bboxes": boxes,
        "batch_idx": torch.arange(batch).repeat_interleave(3).float(),
    }


def _model(cfg: str, nc: int):
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=nc, verbose=False)
    model.args = get_cfg()  # the loss gains (box, cls, dfl) of a default training
    return model.train()


def _step(loss_of, optimizer, batch):
    """One training step: forward with the detection loss, backward, SGD step."""
    loss, _ = loss_of(batch)
    optimizer.zero_grad()
    loss.sum().backward()
    optimizer.step()


def _worker(rank: int, port: int, cfg: str, imgsz: int, batch: int, steps: int, rounds: int, queue):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    from torch.nn.parallel import DistributedDataParallel

    nc = 5
    data = _batch(batch, imgsz, nc, seed=rank)
    alone, shared = _model(cfg, nc), _model(cfg, nc)
    no_buffer_sync = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters  # torch 2.13+
    ddp = DistributedDataParallel(  # as ultralytics wraps it
        shared,
        find_unused_parameters=True,
        **{"forward_sync_buffers" if no_buffer_sync else "broadcast_buffers": False},
    )
    sgd = {"alone": torch.optim.SGD(alone.parameters(), lr=1e-4), "ddp": torch.optim.SGD(ddp.parameters(), lr=1e-4)}
    gradients = torch.zeros(sum(p.numel() for p in shared.parameters()))

    def timed(function, count: int) -> list[float]:
        dist.barrier()
        times = []
        for _ in range(count):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        dist.barrier()
        return times

    kinds = {  # name: (ranks that work, one step)
        "alone": ({0}, lambda: _step(alone.loss, sgd["alone"], data)),
        "side by side": ({0, 1}, lambda: _step(alone.loss, sgd["alone"], data)),
        "ddp": ({0, 1}, lambda: _step(ddp, sgd["ddp"], data)),
        "allreduce": ({0, 1}, lambda: dist.all_reduce(gradients)),
    }
    times = {kind: [] for kind in kinds}
    for r in range(rounds + 1):  # round 0 warms up
        for kind in list(kinds)[:: 1 if r % 2 else -1]:
            ranks, step = kinds[kind]
            measured = timed(step if rank in ranks else lambda: None, steps if rank in ranks else 0)
            if r and rank == 0:
                times[kind] += measured
    if rank == 0:
        queue.put({**times, "parameters": gradients.numel()})
    dist.barrier()  # no rank tears gloo down while the other still talks to it
    dist.destroy_process_group()


def gloo_overhead(cfg: str = "csp_wrc-n.yaml", imgsz: int = 160, batch: int = 8, steps: int = 5, rounds: int = 4):
    """Median seconds per training step alone, side by side and in 2 gloo DDP processes, and per gradient all-reduce.

    Args:
        cfg (str): Model YAML.
        imgsz (int): Image size.
        batch (int): Images per process and step.
        steps (int): Steps per kind and round.
        rounds (int): Rounds; each times every kind ``steps`` times.

    Returns:
        (dict): ``parameters``, and the median seconds of ``alone``, ``side by side``, ``ddp`` and ``allreduce``.
    """
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    args = (free_port(), cfg, imgsz, batch, steps, rounds, queue)
    mp.start_processes(_worker, args=args, nprocs=2, start_method="spawn", join=True)
    result = queue.get()
    medians = {kind: statistics.median(result[kind]) for kind in ("alone", "side by side", "ddp", "allreduce")}
    return {"parameters": result["parameters"], **medians}


@contextlib.contextmanager
def loopback_nodes(command: list, folder: Path, nnodes: int = 2, nproc_per_node: int = 1, env: list | None = None):
    """Run the program ``command`` (e.g. ``[python, script, ...]``) under torchrun as ``nnodes`` nodes on 127.0.0.1
    with c10d rendezvous (node 0 hosts it).

    Node N logs to ``folder/nodeN.log`` and gets the extra environment ``env[N]``. Yields the torchrun processes; on
    exit, kills (with their whole process group) those still running.
    """
    port, processes = free_port(), []
    rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "loopback"]
    try:
        for node in range(nnodes):
            with open(folder / f"node{node}.log", "w") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node"]
                        + [str(nproc_per_node), *rendezvous, f"--rdzv-conf=is_host={int(node == 0)}", "--no-python"]
                        + [str(c) for c in command],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, "OMP_NUM_THREADS": "1", **(env[node] if env else {})},
                        start_new_session=True,
                    )
                )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def torchrun_check(root: str | Path, timeout: float = 240) -> list[dict]:
    """Train csp_wrc-n on shapes for 1 epoch with the stock ``yolo train`` under torchrun, twice: one node of 2
    processes, and 2 loopback nodes of 1 process. On 2+ CUDA GPUs they use GPUs 0 and 1 (nccl; a "node" sees one GPU
    through CUDA_VISIBLE_DEVICES), otherwise the CPU (gloo).

    Args:
        root (str | Path): Folder for the data, the run folders and the logs.
        timeout (float): Seconds each launch may take.

    Returns:
        (list[dict]): Per launch: ``layout``, ``backend`` and ``seconds``.

    Raises:
        RuntimeError: A launch failed, hung, or did not write one complete run folder; the message has its log.
    """
    from cspdet.data.shapes import write_dataset

    root = Path(root)
    data = root / "shapes.yaml"
    shapes = write_dataset(root / "shapes", train=16, val=8, size=64)
    data.write_text(
        f"path: {shapes}\ntrain: images/train\nval: images/val\n"
        "annotations:\n  train: annotations/instances_train.json\n  val: annotations/instances_val.json\n"
    )
    gpus = torch.cuda.device_count() >= 2
    backend = "nccl on cuda" if gpus else "gloo on cpu"
    layouts = {  # run name: (layout, nnodes, nproc_per_node, device, environment per node)
        "1x2": ("1 node x 2 processes", 1, 2, "0,1" if gpus else "cpu", None),
        "2x1": (
            "2 nodes x 1 process",
            2,
            1,
            "0" if gpus else "cpu",
            [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}],
        ),
    }
    results = []
    for run, (layout, nnodes, nproc, device, env) in layouts.items():
        folder = root / run
        folder.mkdir(parents=True, exist_ok=True)
        train = [*YOLO_CLI, "train", "model=csp_wrc-n.yaml", f"data={data}", "epochs=1", "imgsz=64", "batch=8"]
        train += [f"device={device}", "workers=0", "plots=False", f"project={root / 'runs'}", f"name={run}"]
        start = time.monotonic()
        with loopback_nodes(train, folder, nnodes, nproc, env if gpus else None) as processes:
            codes = []
            for process in processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(max(timeout - (time.monotonic() - start), 1))
                codes.append(process.returncode)
        logs = "\n".join((folder / f"node{n}.log").read_text() for n in range(nnodes))
        weights = {p.name for p in (root / "runs" / run / "weights").glob("*.pt")}
        if codes != [0] * nnodes or backend not in logs or weights != {"best.pt", "last.pt"}:
            raise RuntimeError(f"torchrun check {layout} ({backend}) failed, exit codes {codes}:\n{logs[-6000:]}")
        results.append({"layout": layout, "backend": backend, "seconds": round(time.monotonic() - start, 1)})
        LOGGER.info(f"torchrun check {layout}, {backend}: passed in {results[-1]['seconds']} s")
    return results


def gloo_report(cfg: str, imgsz: int, batch: int, steps: int, rounds: int) -> Report:
    """``gloo_overhead`` as a table: one process, side by side, DDP, the communication overhead, all-reduce alone."""
    r = gloo_overhead(cfg, imgsz, batch, steps, rounds)
    ms = {k: r[k] * 1e3 for k in ("alone", "side by side", "ddp", "allreduce")}
    overhead = ms["ddp"] - ms["side by side"]
    header = ["model", "parameters", "gradients", "imgsz", "batch per process", "1 process"]
    header += ["2 processes side by side", "2 processes DDP (gloo)", "communication overhead", "all-reduce alone"]
    row = [cfg, f"{r['parameters'] / 1e6:.2f} M", f"{r['parameters'] * 4 / 2**20:.1f} MB", imgsz]
    row += [batch, f"{ms['alone']:.0f} ms", f"{ms['side by side']:.0f} ms", f"{ms['ddp']:.0f} ms"]
    row += [f"{overhead:.0f} ms ({overhead / ms['side by side']:+.0%})", f"{ms['allreduce']:.1f} ms"]
    text = (
        f"Time per training step (forward with the detection loss, backward, SGD step), medians of {rounds} rounds x "
        f"{steps} steps; {os.cpu_count()} CPU cores shared with other work, torch {torch.__version__}, one thread per "
        "process, 127.0.0.1. Side by side: both processes train without communicating (their CPU contention); the "
        "communication overhead is DDP minus side by side. One machine cannot show a multi-node speed-up "
        "(docs/scale.md)."
    )
    return Report("ddp", "Training across processes: gloo overhead on the loopback", text, [Table(header, [row])])
