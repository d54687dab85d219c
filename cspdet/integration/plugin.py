"""cspdet as an ultralytics plugin: ``install()`` patches ultralytics so that registered modules work everywhere.

Code that ``install()`` loads imports cspdet's leaf modules (``cspdet.eval.coco``, not ``cspdet.eval``): it may run
while the import of a cspdet subpackage is what brought ultralytics in.
"""

from __future__ import annotations

import functools

from cspdet.integration.registry import register_module


def wrap(owner, name: str, replacement):
    """Replace ``owner.name`` (a function or method) by one that calls ``replacement(original, *args)``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        return replacement(original, *args, **kwargs)

    wrapped.cspdet = True
    setattr(owner, name, wrapped)


def _fuse(original, model, *args, **kwargs):
    """BaseModel.fuse, then fold cspdet's shortcut weights into the fused convs (no inference cost, same outputs)."""
    from cspdet.nn.fold import fold_shortcuts

    result = original(model, *args, **kwargs)
    fold_shortcuts(model)
    return result


def _register_blocks():
    """Make cspdet's blocks usable in model YAMLs and in restricted (weights-only) checkpoint loading."""
    import torch

    from cspdet.nn.blocks import ResidualBlock, WeightedResidualBlock, WRCBottleneck
    from cspdet.nn.stages import C3WRC, C2fWRC, C3k2WRC, C3kWRC, CSPBlock
    from cspdet.nn.wrc import WeightedShortcut

    for block in (ResidualBlock, WeightedResidualBlock):
        register_module(block)
    for block in (C3WRC, CSPBlock):
        register_module(block, like="C3")
    register_module(C2fWRC, like="C2f")
    register_module(C3k2WRC, like="C3k2")
    torch.serialization.add_safe_globals([WeightedShortcut, WRCBottleneck, C3kWRC])  # inner classes in checkpoints


def install():
    """Check ultralytics and patch it so that registered modules work from YAMLs and the stock CLI (idempotent)."""
    import ultralytics.engine.model
    import ultralytics.nn
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.nn import tasks
    from ultralytics.utils.callbacks.base import default_callbacks

    from cspdet.integration import configs, data, distributed, evaluation, registry, training
    from cspdet.integration.compat import check_ultralytics

    if getattr(tasks.parse_model, "cspdet", False):
        return
    check_ultralytics()
    _register_blocks()
    for owner in (tasks, ultralytics.nn):
        wrap(owner, "parse_model", registry.parse_model)
    for owner in (tasks, ultralytics.nn, ultralytics.engine.model):
        wrap(owner, "yaml_model_load", configs.load_model_yaml)
    wrap(BaseTrainer, "build_optimizer", training.build_optimizer)
    wrap(tasks.BaseModel, "fuse", _fuse)
    default_callbacks["on_train_epoch_end"].append(training.record_wrc_weights)
    default_callbacks["on_train_end"].append(training.plot_wrc_log)
    data.install()  # COCO JSON data YAMLs, YAML augmentation pipelines
    evaluation.install()  # official COCO metrics in yolo val
    distributed.install()  # torchrun across nodes: the launcher's world, one run folder, clear start errors
