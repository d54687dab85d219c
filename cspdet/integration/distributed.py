"""Training across machines: ultralytics' stock trainer launched by ``torchrun`` on one or many nodes.

Ultralytics sizes its DDP world by the local ``device`` list and forms no process group across nodes, so under
``torchrun --nnodes 2`` each node would train alone (docs/scale.md). Under a launcher (``WORLD_SIZE > 1`` and
``LOCAL_RANK`` set, as torchrun does), ``install()`` makes the trainer use the launcher's world:

- at start every process meets the others through the launcher's store and checks, before any long work, that all
  run the same cspdet, ultralytics and torch, that each node's ``device`` list names one device per process and that
  the global ``batch`` splits evenly; then all take rank 0's run folder and form one process group (nccl on GPUs,
  gloo on CPUs). A failed check stops every process with the same message;
- the world size is the launcher's: batch split, loss scaling and the sampler's shards span every node;
- each process trains on ``device[LOCAL_RANK]`` (or the CPU), also inside DDP and in the final validation;
- rank 0 builds the datasets and their caches first (a shared filesystem sees one writer), and alone writes the run
  folder, which every node must see (checked at start);
- a lost process ends the job on every node with an error that says how to resume.

``CSPDET_DDP_JOIN_TIMEOUT`` (seconds, default 600) bounds how long a process waits for the others at start,
``CSPDET_DDP_TIMEOUT`` (default 10800, ultralytics' own) bounds every collective operation during training.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from ultralytics.utils import LOCAL_RANK, LOGGER, RANK, colorstr

from cspdet.errors import CspdetError
from cspdet.integration.plugin import replaced

_JOINS = itertools.count()  # trainers started in this process: the same sequence on every rank


class LaunchError(CspdetError, RuntimeError):
    """A torchrun launch that cspdet cannot honour, or a job that lost one of its processes."""


def _seconds(name: str, default: float) -> timedelta:
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
    store: dist.Store | None = None  # the job's key-value store, under a prefix of this trainer's own
    timeout: timedelta | None = None  # of collective operations once started

    @classmethod
    def from_env(cls) -> Launch | None:
        """The launch described by torchrun's environment variables, or None outside a multi-process launch."""
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        if world_size < 2 or LOCAL_RANK == -1:
            return None
        return cls(RANK, LOCAL_RANK, world_size, int(os.environ.get("LOCAL_WORLD_SIZE", 0)), socket.gethostname())

    def where(self) -> str:
        return f"rank {self.rank} ({self.host})"


def _versions() -> dict:
    import ultralytics

    from cspdet import __version__

    return {"cspdet": __version__, "ultralytics": ultralytics.__version__, "torch": torch.__version__}


def _resolved_args(cfg, overrides):
    """The trainer's arguments as BaseTrainer.__init__ will see them, including a resumed checkpoint's."""
    from ultralytics.cfg import DEFAULT_CFG_DICT, get_cfg
    from ultralytics.engine.trainer import BaseTrainer

    overrides = {k: v for k, v in (overrides or {}).items() if k in DEFAULT_CFG_DICT}  # not e.g. a HUB "session"
    probe = SimpleNamespace(args=get_cfg(cfg, overrides))
    if probe.args.resume:
        BaseTrainer.check_resume(probe, overrides)  # reads and replaces only .args (and sets .resume)
    return probe.args


def _local_device(device, launch: Launch) -> tuple[torch.device | None, str | None]:
    """This process's device from the ``device`` argument, or None and what is wrong with it."""
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


def _local_check(cfg, overrides, launch: Launch) -> dict:
    """What this process brings to the start: versions, device, problems, and (rank 0) the run folder."""
    from ultralytics.cfg import get_save_dir

    report = {"rank": launch.rank, "host": launch.host, "versions": _versions(), "device": None, "problems": []}
    if not launch.local_world_size:
        report["problems"].append("LOCAL_WORLD_SIZE is not set: launch with torchrun")
        return report
    try:
        args = _resolved_args(cfg, overrides)
    except Exception as e:  # reported to every process below, instead of leaving them waiting
        report["problems"].append(f"{type(e).__name__}: {e}")
        return report
    device, problem = _local_device(args.device, launch)
    report["device"] = device and str(device)
    if problem:
        report["problems"].append(problem)
    if not isinstance(args.batch, int) or args.batch < launch.world_size or args.batch % launch.world_size:
        report["problems"].append(
            f"batch={args.batch} is the global batch and must be a multiple of the {launch.world_size} processes "
            f"(batch / {launch.world_size} images per process)"
        )
    if launch.rank == 0 and not args.resume:
        report["save_dir"] = str(get_save_dir(args))  # the one run folder; a resumed run keeps its checkpoint's
    return report


def _job_problems(reports: list[dict]) -> list[str]:
    """Problems of the whole job, the same on every process."""
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


def _wait(store: dist.Store, keys: list[str], launch: Launch, what: str):
    """Wait for ``keys`` in ``store``; raise a LaunchError naming the processes that never wrote theirs."""
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


def join(launch: Launch, cfg, overrides) -> dict | None:
    """Meet every process of the job, check the launch, form the process group; return rank 0's run folder args.

    Returns:
        (dict | None): ``{"save_dir": ...}`` for a new run (every rank then uses rank 0's folder), None on resume.
    """
    join_timeout, launch.timeout = _seconds("CSPDET_DDP_JOIN_TIMEOUT", 600), _seconds("CSPDET_DDP_TIMEOUT", 10800)
    store, _, _ = next(dist.rendezvous("env://", launch.rank, launch.world_size, timeout=join_timeout))
    launch.store = dist.PrefixStore(f"cspdet/trainer{next(_JOINS)}/", store)
    report = _local_check(cfg, overrides, launch)
    launch.store.set(f"rank {launch.rank}", json.dumps(report))
    everyone = [f"rank {r}" for r in range(launch.world_size)]
    _wait(launch.store, everyone, launch, "starting the job")
    reports = [json.loads(launch.store.get(k)) for k in everyone]
    problems = _job_problems(reports)
    if problems:
        nodes = len({r["host"] for r in reports})
        raise LaunchError(
            f"cspdet cannot run this torchrun job ({launch.world_size} processes on {nodes} host(s)):\n- "
            + "\n- ".join(problems)
        )
    launch.device = torch.device(report["device"])
    if launch.device.type == "cuda":
        torch.cuda.set_device(launch.device)
    if not dist.is_initialized():
        backend = "nccl" if launch.device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, store=store, rank=launch.rank, world_size=launch.world_size, timeout=launch.timeout
        )
    LOGGER.info(
        f"{colorstr('cspdet:')} torchrun job of {launch.world_size} processes on "
        f"{len({r['host'] for r in reports})} host(s), {dist.get_backend()} on {launch.device.type}"
    )
    return {"save_dir": reports[0]["save_dir"]} if "save_dir" in reports[0] else None


def check_run_folder(trainer, launch: Launch):
    """Every process must see the run folder rank 0 made (checkpoints, resume and final validation read it)."""
    marker = Path(trainer.save_dir) / "args.yaml"
    if launch.rank == 0:
        launch.store.set("run folder", str(trainer.save_dir))
    else:
        _wait(launch.store, ["run folder"], launch, "waiting for rank 0's run folder")
        launch.store.set(f"sees {launch.rank}", "1" if marker.is_file() else "0")
    others = [f"sees {r}" for r in range(1, launch.world_size)]
    _wait(launch.store, others, launch, "checking the run folder")
    blind = [k.split()[1] for k in others if launch.store.get(k) == b"0"]
    if blind:
        raise LaunchError(
            f"the run folder {trainer.save_dir} made by rank 0 is not visible to rank {', '.join(blind)}: put "
            "project= on a filesystem that every node shares (checkpoints, resume and the final validation need it)"
        )
    launch.store.set_timeout(launch.timeout)  # started: from now on the job waits as long as its collectives


def init_trainer(original, trainer, cfg=None, overrides=None, _callbacks=None):
    """BaseTrainer.__init__ that joins a launcher's job first and takes its world size."""
    from ultralytics.cfg import DEFAULT_CFG, cfg2dict

    cfg = DEFAULT_CFG if cfg is None else cfg
    launch = Launch.from_env()
    if launch is None:
        return original(trainer, cfg, overrides, _callbacks)
    trainer.cspdet_launch = launch
    folder = join(launch, cfg, overrides)
    if folder:
        cfg = {**cfg2dict(cfg), **folder}
    original(trainer, cfg, overrides, _callbacks)
    check_run_folder(trainer, launch)
    if "world_size" not in inspect.signature(type(trainer)._do_train).parameters:
        trainer.world_size = launch.world_size  # batch split, loss scaling, DDP wrap, EMA and AMP sync


def _launch(trainer) -> Launch | None:
    return getattr(trainer, "cspdet_launch", None)


def _barrier(launch: Launch):
    dist.barrier(device_ids=[launch.device.index]) if launch.device.type == "cuda" else dist.barrier()


def rank_zero_first(original, trainer, *args, **kwargs):
    """Rank 0 of the whole job runs ``original`` (dataset checks, label caches) before every other rank."""
    launch = _launch(trainer)
    if launch is None:
        return original(trainer, *args, **kwargs)
    if launch.rank != 0:
        _barrier(launch)
    result = original(trainer, *args, **kwargs)
    if launch.rank == 0:
        _barrier(launch)
    return result


def get_dataloader(original, trainer, *args, **kwargs):
    """DetectionTrainer.get_dataloader: loaders that every rank builds (``rank`` given) are built rank 0 first."""
    rank = inspect.signature(original).bind(trainer, *args, **kwargs).arguments.get("rank", 0)
    if rank == -1:  # built by one rank only (ultralytics' rank-0 validation loader before 8.3.218)
        return original(trainer, *args, **kwargs)
    return rank_zero_first(original, trainer, *args, **kwargs)


def setup_ddp(original, trainer, *args, **kwargs):
    """BaseTrainer._setup_ddp: the process group exists already (see join); train on this process's device."""
    launch = _launch(trainer)
    if launch is None:
        return original(trainer, *args, **kwargs)
    trainer.device = launch.device


class LaunchDDP(DistributedDataParallel):
    """DistributedDataParallel on the module's own device, whatever ``device_ids`` ultralytics computed for its
    single-node workers (``[RANK]`` before 8.3.200, ``[device.index]``, i.e. ``[None]`` on CPU, after)."""

    def __init__(self, module, device_ids=None, *args, **kwargs):
        device = next(module.parameters()).device
        super().__init__(module, None if device.type == "cpu" else [device.index], *args, **kwargs)


def setup_train(original, trainer, *args, **kwargs):
    """BaseTrainer._setup_train with LaunchDDP as the DDP wrapper."""
    if _launch(trainer) is None:
        return original(trainer, *args, **kwargs)
    parallel = torch.nn.parallel
    parallel.DistributedDataParallel = LaunchDDP
    try:
        return original(trainer, *args, **kwargs)
    finally:
        parallel.DistributedDataParallel = DistributedDataParallel


def _lost_peer(error: BaseException) -> bool:
    """Whether ``error`` says that another process of the job went away (or stopped answering)."""
    return isinstance(error, dist.DistError) or "gloo/transport" in str(error)


def do_train(original, trainer, *args, **kwargs):
    """BaseTrainer._do_train over the launcher's world; a lost process becomes a LaunchError that says what to do."""
    launch = _launch(trainer)
    if launch is None:
        return original(trainer, *args, **kwargs)
    if "world_size" in inspect.signature(original).parameters:  # before 8.3.200 train() passes its local count
        args, kwargs = (launch.world_size,), {}
    try:
        return original(trainer, *args, **kwargs)
    except Exception as e:
        if not _lost_peer(e):
            raise
        last = Path(trainer.last)
        resume = f"with the same launch and 'resume model={last}'" if last.is_file() else "anew (no last.pt yet)"
        raise LaunchError(
            f"{launch.where()} lost contact with the other processes of the job ({str(e).splitlines()[0]}). "
            f"Another process of the job stopped or the network failed: see the log of every node. The job ends on "
            f"every node; start it again {resume} on every node"
        ) from e


class _Delegate:
    """``target`` with some attributes replaced: what ultralytics' validator sees of torch on a CPU launch."""

    def __init__(self, target, **replaced):
        self._target = target
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._target, name)


@contextlib.contextmanager
def _validation_on(device: torch.device):
    """Standalone validation in a launched process runs on ``device``: ultralytics' validator picks a DDP rank's
    device as ``cuda:RANK`` (8.3.218 to 8.4.67) or the current accelerator's device (``torch.cuda.current_device()``
    in later 8.4 releases, then ``get_torch_device_backend``), wrong across nodes and failing on CPU."""
    from ultralytics.engine import validator

    autobackend = validator.AutoBackend

    def on_device(*args, **kwargs):
        bound = inspect.signature(autobackend).bind(*args, **kwargs)
        bound.arguments["device"] = device
        return autobackend(*bound.args, **bound.kwargs)

    swapped = {"AutoBackend": on_device}
    if device.type == "cpu":  # the device asked for is replaced above; asking must not initialise CUDA
        no_accelerator = _Delegate(torch.cuda, current_device=lambda: 0)
        if hasattr(validator, "get_torch_device_backend"):
            swapped["get_torch_device_backend"] = lambda device_type: no_accelerator
        else:
            swapped["torch"] = _Delegate(torch, cuda=no_accelerator)
    with replaced(validator, **swapped):
        yield


def final_eval(original, trainer):
    """BaseTrainer.final_eval on this process's device, once this process sees the best.pt that rank 0 saved."""
    launch = _launch(trainer)
    if launch is None:
        return original(trainer)
    best = Path(trainer.best)
    if launch.rank == 0:
        launch.store.set("best", "1" if best.is_file() else "0")
    elif launch.store.get("best") == b"1":  # every rank validates best.pt from 8.3.218 on; before, rank 0 alone
        deadline = time.monotonic() + 60
        while not best.is_file() and time.monotonic() < deadline:  # a network filesystem may show it late
            time.sleep(1)
        if not best.is_file():
            raise LaunchError(f"{launch.where()}: rank 0 saved {best}, but this node does not see it after 60 s")
    with _validation_on(launch.device):
        return original(trainer)


def probe():
    """Raise UnsupportedUltralytics if ultralytics lacks what install() patches; return None otherwise."""
    from ultralytics.engine import validator
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.models.yolo.detect import DetectionTrainer

    from cspdet.integration.compat import UnsupportedUltralytics

    needed = {
        "BaseTrainer.__init__": (BaseTrainer, "__init__", {"cfg", "overrides", "_callbacks"}),
        "BaseTrainer.check_resume": (BaseTrainer, "check_resume", {"overrides"}),
        "BaseTrainer.get_dataset": (BaseTrainer, "get_dataset", set()),
        "BaseTrainer._setup_ddp": (BaseTrainer, "_setup_ddp", set()),
        "BaseTrainer._setup_train": (BaseTrainer, "_setup_train", set()),
        "BaseTrainer._do_train": (BaseTrainer, "_do_train", set()),
        "BaseTrainer.final_eval": (BaseTrainer, "final_eval", set()),
        "DetectionTrainer.get_dataloader": (DetectionTrainer, "get_dataloader", {"rank"}),
        "engine.validator.AutoBackend": (validator, "AutoBackend", {"device"}),
    }
    missing = []
    for name, (owner, attribute, parameters) in needed.items():
        found = getattr(owner, attribute, None)
        if found is None or not parameters <= set(inspect.signature(found).parameters):
            missing.append(f"{name}({', '.join(sorted(parameters))})")
    if missing:
        import ultralytics

        raise UnsupportedUltralytics(
            f"ultralytics {ultralytics.__version__} lacks what cspdet's torchrun training patches: {', '.join(missing)}"
        )


def install():
    """Patch the trainer for launcher-driven training (called by cspdet's install; a no-op outside a launch)."""
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.models.yolo.detect import DetectionTrainer

    from cspdet.integration.plugin import wrap

    for name, replacement in {
        "__init__": init_trainer,
        "get_dataset": rank_zero_first,
        "_setup_ddp": setup_ddp,
        "_setup_train": setup_train,
        "_do_train": do_train,
        "final_eval": final_eval,
    }.items():
        wrap(BaseTrainer, name, replacement)
    wrap(DetectionTrainer, "get_dataloader", get_dataloader)
