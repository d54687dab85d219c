"""The processes of a launcher-started job (torchrun) meeting at start: the store exchange, the checks they must agree
on, and the waits, with torch.distributed alone (``cspdet.integration.distributed`` runs it for ultralytics' trainer).

Every process posts a report (its versions, its device, its problems) to the launcher's store and waits for every
other one's; a problem of any process stops every process with the same message, before any long work. Then they form
one process group (nccl on GPUs, gloo on CPUs). A process that never reports is named once the join timeout
(``CSPDET_DDP_JOIN_TIMEOUT``, seconds, default 600) ends; ``CSPDET_DDP_TIMEOUT`` (default 10800) bounds every wait
and collective operation after the start.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from cspdet.errors import CspdetError

_JOINS = itertools.count()  # jobs joined in this process: the same sequence on every rank


class LaunchError(CspdetError, RuntimeError):
    """A launch that cspdet cannot honour, or a job that lost one of its processes."""


def seconds(name: str, default: float) -> timedelta:
    """The environment variable ``name`` as a duration in seconds, ``default`` when unset."""
    try:
        return timedelta(seconds=float(os.environ.get(name, default)))
    except ValueError:
        raise LaunchError(f"environment variable {name}={os.environ[name]!r} is not a number of seconds") from None


@dataclass
class Launch:
    """This process's place in a launcher-started job, and what the job agreed on at start."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    host: str
    device: torch.device | None = None
    store: dist.Store | None = None  # the job's key-value store, under a prefix of this join's own
    timeout: timedelta | None = None  # of waits and collective operations once started

    @classmethod
    def from_env(cls) -> Launch | None:
        """The launch described by torchrun's environment variables, or None outside a multi-process launch."""
        world_size, local_rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", -1))
        if world_size < 2 or local_rank == -1:
            return None
        rank, local_world_size = int(os.environ.get("RANK", -1)), int(os.environ.get("LOCAL_WORLD_SIZE", 0))
        return cls(rank, local_rank, world_size, local_world_size, socket.gethostname())

    def where(self) -> str:
        return f"rank {self.rank} ({self.host})"


def local_device(device, launch: Launch) -> tuple[torch.device | None, str | None]:
    """This process's device from a ``device`` argument (``0,1``, ``cpu``, ...), or None and what is wrong with it."""
    if isinstance(device, (list, tuple)):
        device = ",".join(str(d) for d in device)
    text = str("" if device is None else device).lower().replace("cuda:", "").replace(" ", "")
    if text == "cpu":
        return torch.device("cpu"), None
    if text in {"", "none"}:
        if not torch.cuda.is_available():
            return torch.device("cpu"), None
        text = ",".join(str(i) for i in range(launch.local_world_size))
    indices = text.split(",")
    if not all(i.isdigit() for i in indices) or len(set(indices)) < len(indices):
        return None, f"device={device}: under torchrun, name distinct CUDA GPUs by index (device=0,1), or cpu"
    if len(indices) != launch.local_world_size:
        return None, (
            f"device={device} names {len(indices)} device(s), but torchrun started {launch.local_world_size} "
            f"process(es) on this node (--nproc-per-node {launch.local_world_size}): name one device per process, "
            f"e.g. device={','.join(str(i) for i in range(launch.local_world_size))}"
        )
    count = torch.cuda.device_count()
    if max(int(i) for i in indices) >= count:
        return None, f"device={device}, but this node has {count} CUDA device(s)"
    return torch.device("cuda", int(indices[launch.local_rank])), None


def report(launch: Launch, versions: dict, device: str | None, problems: list[str], **extra) -> dict:
    """What one process brings to the start (``extra``: anything the others need, e.g. rank 0's run folder)."""
    own = {"rank": launch.rank, "host": launch.host, "versions": versions, "device": device, "problems": problems}
    return {**own, **extra}


def job_problems(reports: list[dict]) -> list[str]:
    """Problems of the whole job, the same on every process: each process's own, mixed versions, mixed devices."""
    problems = [f"rank {r['rank']} ({r['host']}): {p}" for r in reports for p in r["problems"]]
    for package in reports[0]["versions"]:
        found = {}
        for r in reports:
            found.setdefault(r["versions"][package], []).append(f"{r['rank']} ({r['host']})")
        if len(found) > 1:
            problems.append(
                f"mixed {package} versions: "
                + "; ".join(f"{version} on rank {', '.join(ranks)}" for version, ranks in found.items())
                + f"; install one {package} version on every node"
            )
    kinds = {r["device"].split(":")[0] for r in reports if r["device"]}
    if len(kinds) > 1:
        problems.append(f"processes would train on different kinds of device ({', '.join(sorted(kinds))})")
    return problems


def wait(launch: Launch, keys: list[str], what: str):
    """Wait for ``keys`` in the job's store; raise a LaunchError naming the processes that never wrote theirs."""
    store = launch.store
    try:
        store.wait(keys)
    except dist.DistStoreError as e:  # the store's timeout
        missing = [k for k in keys if not store.check([k])]
        raise LaunchError(
            f"{launch.where()}: {what}: no word from {', '.join(missing)} within {store.timeout.total_seconds():.0f} s "
            "(CSPDET_DDP_JOIN_TIMEOUT). Every node must run the same command with cspdet installed: see the logs of "
            "the other nodes"
        ) from e
    except dist.DistError as e:  # the store went away
        raise LaunchError(
            f"{launch.where()}: {what}: lost the job's store, which torchrun on node rank 0 serves ({e}). See the logs "
            "of the other nodes"
        ) from e


def join(launch: Launch, own_report) -> list[dict]:
    """Meet every process of the job, check the launch, form the process group; return every process's report.

    Args:
        launch (Launch): This process; its ``store``, ``timeout`` and ``device`` are set here.
        own_report (Callable): Called once the job's store is reached; returns this process's ``report``.

    Raises:
        LaunchError: On every process alike, listing the problems of every process (``job_problems``).
    """
    join_timeout, launch.timeout = seconds("CSPDET_DDP_JOIN_TIMEOUT", 600), seconds("CSPDET_DDP_TIMEOUT", 10800)
    store, _, _ = next(dist.rendezvous("env://", launch.rank, launch.world_size, timeout=join_timeout))
    launch.store = dist.PrefixStore(f"cspdet/trainer{next(_JOINS)}/", store)
    mine = own_report()
    launch.store.set(f"rank {launch.rank}", json.dumps(mine))
    everyone = [f"rank {r}" for r in range(launch.world_size)]
    wait(launch, everyone, "starting the job")
    reports = [json.loads(launch.store.get(k)) for k in everyone]
    problems = job_problems(reports)
    if problems:
        nodes = len({r["host"] for r in reports})
        raise LaunchError(
            f"cspdet cannot run this torchrun job ({launch.world_size} processes on {nodes} host(s)):\n- "
            + "\n- ".join(problems)
        )
    launch.device = torch.device(mine["device"])
    if launch.device.type == "cuda":
        torch.cuda.set_device(launch.device)
    if not dist.is_initialized():
        backend = "nccl" if launch.device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, store=store, rank=launch.rank, world_size=launch.world_size, timeout=launch.timeout
        )
    return reports


def check_shared_folder(launch: Launch, folder: Path, marker: Path):
    """Every process must see ``marker``, which rank 0 wrote into ``folder``; raise on every process otherwise.

    After this the job counts as started: its store waits as long as its collective operations.
    """
    if launch.rank == 0:
        launch.store.set("run folder", str(folder))
    else:
        wait(launch, ["run folder"], "waiting for rank 0's run folder")
        launch.store.set(f"sees {launch.rank}", "1" if marker.is_file() else "0")
    others = [f"sees {r}" for r in range(1, launch.world_size)]
    wait(launch, others, "checking the run folder")
    blind = [k.split()[1] for k in others if launch.store.get(k) == b"0"]
    if blind:
        raise LaunchError(
            f"the run folder {folder} made by rank 0 is not visible to rank {', '.join(blind)}: put project= on a "
            "filesystem that every node shares (checkpoints, resume and the final validation need it)"
        )
    launch.store.set_timeout(launch.timeout)


def see_rank_zero_file(launch: Launch, file: Path, key: str, patience: float = 60):
    """Rank 0 says under ``key`` whether it wrote ``file``; every other process then waits up to ``patience`` seconds
    to see it (a network filesystem may show it late) and raises if it does not."""
    if launch.rank == 0:
        launch.store.set(key, "1" if file.is_file() else "0")
        return
    if launch.store.get(key) != b"1":
        return
    deadline = time.monotonic() + patience
    while not file.is_file() and time.monotonic() < deadline:
        time.sleep(1)
    if not file.is_file():
        raise LaunchError(f"{launch.where()}: rank 0 saved {file}, but this node does not see it after {patience:g} s")


def barrier(launch: Launch):
    """Wait for every process of the job."""
    dist.barrier(device_ids=[launch.device.index]) if launch.device.type == "cuda" else dist.barrier()


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` says that another process of the job went away (or stopped answering)."""
    return isinstance(error, dist.DistError) or "gloo/transport" in str(error)
