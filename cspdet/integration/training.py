"""Training hooks: keep WRC weights out of weight decay, and record them every epoch."""

from __future__ import annotations

import csv
from pathlib import Path

from ultralytics.utils import LOGGER, RANK, colorstr, torch_utils

from cspdet.files import atomic_write
from cspdet.nn.wrc import WeightedShortcut
from cspdet.plotting import WRC_CSV, plot_wrc_weights


def unwrap_model(model):
    """The model inside a DDP or compile wrapper (``unwrap_model`` from 8.3.x on, ``de_parallel`` before it)."""
    return (getattr(torch_utils, "unwrap_model", None) or torch_utils.de_parallel)(model)


def exempt_from_decay(optimizer, model) -> int:
    """Move every WeightedShortcut alpha/beta out of weight-decaying groups into no-decay twins of those groups.

    Ultralytics decays every parameter that is not a bias or a norm weight, which would pull alpha and beta to 0.
    Returns the number of parameters moved.
    """
    wrc = {id(p) for m in unwrap_model(model).modules() if isinstance(m, WeightedShortcut) for p in m.parameters()}
    moved = 0
    for group in list(optimizer.param_groups):
        if not group.get("weight_decay"):
            continue
        keep = [p for p in group["params"] if id(p) not in wrc]
        if len(keep) == len(group["params"]):
            continue
        twin = {k: v for k, v in group.items() if k != "params"}
        twin.update(params=[p for p in group["params"] if id(p) in wrc], weight_decay=0.0, param_group="wrc")
        group["params"] = keep
        optimizer.add_param_group(twin)
        moved += len(twin["params"])
    if moved:
        LOGGER.info(f"{colorstr('cspdet:')} {moved} WRC weights (alpha, beta) in a no-decay parameter group")
    return moved


def build_optimizer(original, trainer, model, *args, **kwargs):
    """BaseTrainer.build_optimizer with WRC weights exempt from weight decay."""
    optimizer = original(trainer, model, *args, **kwargs)
    exempt_from_decay(optimizer, model)
    return optimizer


def wrc_weights(model) -> list[tuple[str, float, float]]:
    """Return (layer name, mean effective alpha, mean effective beta) for every WeightedShortcut in ``model``."""
    rows = []
    for name, m in unwrap_model(model).named_modules():
        if isinstance(m, WeightedShortcut):
            a, b = m.coefficients()
            rows.append((name, float(a.float().mean()), float(b.float().mean())))
    return rows


def record_wrc_weights(trainer):
    """on_train_epoch_end callback: append the epoch's alpha/beta per layer to ``save_dir/wrc_weights.csv``.

    It is also what makes DDP workers import cspdet: ultralytics pickles the trainer's callbacks into the worker
    script, and this function is pickled by reference.
    """
    if RANK not in {-1, 0}:
        return
    rows = wrc_weights(trainer.ema.ema if getattr(trainer, "ema", None) else trainer.model)
    if not rows:
        return
    path = Path(trainer.save_dir) / WRC_CSV
    previous = path.read_text() if path.exists() else "epoch,layer,alpha,beta\n"
    with atomic_write(path, newline="") as f:
        f.write(previous)
        csv.writer(f).writerows((trainer.epoch + 1, name, f"{a:.6g}", f"{b:.6g}") for name, a, b in rows)


def plot_wrc_log(trainer):
    """on_train_end callback: plot ``wrc_weights.csv`` next to ultralytics' results.png."""
    path = Path(trainer.save_dir) / WRC_CSV
    if RANK in {-1, 0} and trainer.args.plots and path.exists():
        plot_wrc_weights(path)


def probe():
    """Check the optimizer builder, the callback events and the model unwrapping used here."""
    import inspect

    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.utils.callbacks.base import default_callbacks

    if list(inspect.signature(BaseTrainer.build_optimizer).parameters)[:2] != ["self", "model"]:
        raise TypeError("BaseTrainer.build_optimizer no longer takes the model first")
    missing = {"on_train_epoch_end", "on_train_end"} - set(default_callbacks)
    if missing:
        raise KeyError(f"callback events {sorted(missing)} are gone")
    if not (hasattr(torch_utils, "unwrap_model") or hasattr(torch_utils, "de_parallel")):
        raise AttributeError("ultralytics.utils.torch_utils has neither unwrap_model nor de_parallel")


def install():
    """Keep WRC weights out of weight decay; record and plot them during training."""
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.utils.callbacks.base import default_callbacks

    from cspdet.patching import wrap

    wrap(BaseTrainer, "build_optimizer", build_optimizer)
    default_callbacks["on_train_epoch_end"].append(record_wrc_weights)
    default_callbacks["on_train_end"].append(plot_wrc_log)


def training_loss(model, batch: dict):
    """The model's own training loss on ``batch``, with the trainer's default loss gains (what a trainer sets up).

    Returns:
        (tuple): ``(loss, loss_items)`` as ``model.loss`` returns them; call ``.sum().backward()`` on the first.
    """
    from ultralytics.cfg import get_cfg

    if not hasattr(getattr(model, "args", None), "box"):
        model.args = get_cfg()  # the loss reads its gains (box, cls, dfl) from the trainer's arguments
    return model.loss(batch)
