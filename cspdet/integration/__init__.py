"""The one place where cspdet reaches into ultralytics: YAML parsing, model YAML lookup, trainer hooks."""

from __future__ import annotations

import functools

from cspdet.integration.registry import REGISTRY, register_module

__all__ = ["REGISTRY", "install", "register_module"]


def _wrap(owner, name: str, replacement):
    """Replace ``owner.name`` (a function or method) by one that calls ``replacement(original, *args)``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        return replacement(original, *args, **kwargs)

    wrapped.cspdet = True
    setattr(owner, name, wrapped)


def _fuse(original, model, *args, **kwargs):
    """BaseModel.fuse, then fold cspdet's shortcut weights into the fused convs (no inference cost, same outputs)."""
    result = original(model, *args, **kwargs)
    for module in model.modules():
        if hasattr(module, "fuse_shortcuts"):
            module.fuse_shortcuts()
    return result


def install():
    """Check ultralytics and patch it so that registered modules work from YAMLs and the stock CLI (idempotent)."""
    import ultralytics.engine.model
    import ultralytics.nn
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.nn import tasks
    from ultralytics.utils.callbacks.base import default_callbacks

    from cspdet.integration import configs, data, evaluation, registry, training
    from cspdet.integration.compat import check_ultralytics

    if getattr(tasks.parse_model, "cspdet", False):
        return
    check_ultralytics()
    for owner in (tasks, ultralytics.nn):
        _wrap(owner, "parse_model", registry.parse_model)
    for owner in (tasks, ultralytics.nn, ultralytics.engine.model):
        _wrap(owner, "yaml_model_load", configs.load_model_yaml)
    _wrap(BaseTrainer, "build_optimizer", training.build_optimizer)
    _wrap(tasks.BaseModel, "fuse", _fuse)
    default_callbacks["on_train_epoch_end"].append(training.record_wrc_weights)
    default_callbacks["on_train_end"].append(training.plot_wrc_log)
    data.install()  # COCO JSON data YAMLs, YAML augmentation pipelines
    evaluation.install()  # official COCO metrics in yolo val
