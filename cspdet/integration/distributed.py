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

The meeting at start (the store exchange, the checks, the waits) is ``cspdet.launch``, which needs torch alone; this
module gives it the trainer's arguments and wraps the trainer. ``CSPDET_DDP_JOIN_TIMEOUT`` (seconds, default 600)
bounds how long a process waits for the others at start, ``CSPDET_DDP_TIMEOUT`` (default 10800, ultralytics' own)
bounds every collective operation during training.
"""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from ultralytics.utils import LOGGER, colorstr

from cspdet import launch as job
from cspdet.launch import Launch, LaunchError
from cspdet.patching import replaced
from cspdet.version import __version__


def _versions() -> dict:
    import ultralytics

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


def _local_check(cfg, overrides, launch: Launch) -> dict:
    """What this process brings to the start (``cspdet.launch.report``): versions, device, problems, and rank 0's
    run folder."""
    from ultralytics.cfg import get_save_dir

    if not launch.local_world_size:
        return job.report(launch, _versions(), None, ["LOCAL_WORLD_SIZE is not set: launch with torchrun"])
    try:
        args = _resolved_args(cfg, overrides)
    except Exception as e:  # reported to every process, instead of leaving them waiting
        return job.report(launch, _versions(), None, [f"{type(e).__name__}: {e}"])
    device, problem = job.local_device(args.device, launch)
    problems = [problem] if problem else []
    if not isinstance(args.batch, int) or args.batch < launch.world_size or args.batch % launch.world_size:
        problems.append(
            f"batch={args.batch} is the global batch and must be a multiple of the {launch.world_size} processes "
            f"(batch / {launch.world_size} images per process)"
        )
    extra = {"save_dir": str(get_save_dir(args))} if launch.rank == 0 and not args.resume else {}  # the one folder
    return job.report(launch, _versions(), device and str(device), problems, **extra)


@contextlib.contextmanager
def set_up_trainer(trainer, cfg, overrides):
    """Around BaseTrainer.__init__ (``plugin.TRAINER_SET_UP``): under a launcher, meet the job first and take rank
    0's run folder; once the trainer is built, check that every process sees that folder and take the job's world
    size. Outside a launch, nothing."""
    from ultralytics.cfg import cfg2dict

    launch = Launch.from_env()
    if launch is None:
        yield cfg, overrides
        return
    trainer.cspdet_launch = launch
    reports = job.join(launch, lambda: _local_check(cfg, overrides, launch))
    LOGGER.info(
        f"{colorstr('cspdet:')} torchrun job of {launch.world_size} processes on "
        f"{len({r['host'] for r in reports})} host(s), {dist.get_backend()} on {launch.device.type}"
    )
    if "save_dir" in reports[0]:  # a new run: every rank uses rank 0's folder (a resumed run keeps its own)
        cfg = {**cfg2dict(cfg), "save_dir": reports[0]["save_dir"]}
    yield cfg, overrides
    job.check_shared_folder(launch, Path(trainer.save_dir), Path(trainer.save_dir) / "args.yaml")
    if "world_size" not in inspect.signature(type(trainer)._do_train).parameters:
        trainer.world_size = launch.world_size  # batch split, loss scaling, DDP wrap, EMA and AMP sync


def _launch(trainer) -> Launch | None:
    return getattr(trainer, "cspdet_launch", None)


def rank_zero_first(original, trainer, *args, **kwargs):
    """Rank 0 of the whole job runs ``original`` (dataset checks, label caches) before every other rank."""
    launch = _launch(trainer)
    if launch is None:
        return original(trainer, *args, **kwargs)
    if launch.rank != 0:
        job.barrier(launch)
    result = original(trainer, *args, **kwargs)
    if launch.rank == 0:
        job.barrier(launch)
    return result


def get_dataloader(original, trainer, *args, **kwargs):
    """DetectionTrainer.get_dataloader: loaders that every rank builds (``rank`` given) are built rank 0 first."""
    rank = inspect.signature(original).bind(trainer, *args, **kwargs).arguments.get("rank", 0)
    if rank == -1:  # built by one rank only (ultralytics' rank-0 validation loader before 8.3.218)
        return original(trainer, *args, **kwargs)
    return rank_zero_first(original, trainer, *args, **kwargs)


def setup_ddp(original, trainer, *args, **kwargs):
    """BaseTrainer._setup_ddp: the process group exists already (cspdet.launch.join); train on this process's device."""
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
    with replaced(torch.nn.parallel, DistributedDataParallel=LaunchDDP):
        return original(trainer, *args, **kwargs)


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
        if not job.lost_peer(e):
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
    job.see_rank_zero_file(launch, Path(trainer.best), "best")  # every rank validates best.pt from 8.3.218 on
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
    """Patch the trainer for launcher-driven training (a no-op outside a launch); its set-up: ``set_up_trainer``."""
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.models.yolo.detect import DetectionTrainer

    from cspdet.patching import wrap

    for name, replacement in {  # BaseTrainer.__init__: set_up_trainer
        "get_dataset": rank_zero_first,
        "_setup_ddp": setup_ddp,
        "_setup_train": setup_train,
        "_do_train": do_train,
        "final_eval": final_eval,
    }.items():
        wrap(BaseTrainer, name, replacement)
    wrap(DetectionTrainer, "get_dataloader", get_dataloader)
