"""Epoch scalars for results.csv and the experiment loggers: the 12 official COCO numbers and the WRC weights.

Every validation during training adds, after ultralytics' own metrics and validation losses:

- ``coco/AP`` ... ``coco/ARl``: the official COCO numbers of the epoch (``validator.metrics.coco``, scored by the
  evaluation seam for COCO-format data), for a split with an ``annotations:`` JSON;
- ``wrc/<layer>.alpha`` and ``wrc/<layer>.beta``: the mean effective alpha and beta of each stage (model layer) with
  weighted shortcuts, from the EMA model that is validated.

They land in the trainer's metrics, so results.csv gets them as columns and every logger that ultralytics'
integrations drive (TensorBoard, MLflow, W&B, ClearML, Comet, DVC; ``yolo settings tensorboard=True`` and so on) logs
them as scalars each epoch, from rank 0, where ultralytics runs its loggers. The keys are fixed once training is set
up (a value that cannot be had is NaN), so results.csv keeps its columns every epoch, also with ``val=False``.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from ultralytics.utils import RANK

from cspdet.eval.coco import METRIC_KEYS
from cspdet.integration.training import unwrap_model, wrc_weights


def stage_weights(model) -> dict[str, float]:
    """``wrc/<layer>.alpha`` and ``wrc/<layer>.beta``: the mean effective weights of each layer's weighted shortcuts."""
    per_layer = defaultdict(list)
    with torch.no_grad():
        for name, alpha, beta in wrc_weights(model):
            per_layer[".".join(name.split(".")[:2]).removeprefix("model.")].append((alpha, beta))
    scalars = {}
    for layer, weights in per_layer.items():
        scalars[f"wrc/{layer}.alpha"] = sum(a for a, _ in weights) / len(weights)
        scalars[f"wrc/{layer}.beta"] = sum(b for _, b in weights) / len(weights)
    return scalars


def scores_coco(trainer) -> bool:
    """Whether the trainer's validation split is scored with the official COCO metrics (see the evaluation seam)."""
    annotations = (getattr(trainer, "data", None) or {}).get("annotations") or {}
    return trainer.args.task == "detect" and (trainer.args.split or "val") in annotations


def epoch_scalars(trainer) -> dict[str, float]:
    """This epoch's COCO numbers and WRC weights (what is available of them)."""
    coco = getattr(getattr(getattr(trainer, "validator", None), "metrics", None), "coco", None) or {}
    scalars = {f"coco/{k}": coco[k] for k in METRIC_KEYS if k in coco}
    model = trainer.ema.ema if getattr(trainer, "ema", None) else trainer.model
    return scalars | stage_weights(unwrap_model(model))


def declare_scalars(trainer):
    """on_pretrain_routine_end callback: fix the keys and add them to the metrics ultralytics starts from."""
    keys = [f"coco/{k}" for k in METRIC_KEYS] if scores_coco(trainer) else []
    keys += list(stage_weights(unwrap_model(trainer.model)))
    trainer.cspdet_scalars = keys
    if RANK in {-1, 0} and trainer.metrics is not None:
        trainer.metrics = {**trainer.metrics, **dict.fromkeys(keys, math.nan)}


def validate(original, trainer):
    """BaseTrainer.validate whose metrics end with the epoch scalars."""
    metrics, fitness = original(trainer)
    keys = getattr(trainer, "cspdet_scalars", None)
    if metrics is not None and keys:
        scalars = epoch_scalars(trainer)
        metrics = {**metrics, **{k: scalars.get(k, math.nan) for k in keys}}
    return metrics, fitness


def probe():
    """Check the trainer method and the callback event used here."""
    import inspect

    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.utils.callbacks.base import default_callbacks

    if list(inspect.signature(BaseTrainer.validate).parameters) != ["self"]:
        raise TypeError("BaseTrainer.validate no longer takes no arguments")
    if "on_pretrain_routine_end" not in default_callbacks:
        raise KeyError("callback event 'on_pretrain_routine_end' is gone")


def install():
    """Add the epoch scalars to every validation during training."""
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.utils.callbacks.base import default_callbacks

    from cspdet.patching import wrap

    wrap(BaseTrainer, "validate", validate)
    default_callbacks["on_pretrain_routine_end"].append(declare_scalars)
