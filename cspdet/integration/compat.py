"""Checks that the installed ultralytics is one cspdet was tested with and still has the internals it patches."""

from __future__ import annotations

import inspect

import ultralytics
from torch import nn
from ultralytics.data import utils as data_utils
from ultralytics.engine.predictor import BasePredictor
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.nn import tasks
from ultralytics.utils.callbacks.base import default_callbacks

from cspdet.errors import CspdetError
from cspdet.integration.registry import RULES

SUPPORTED_ULTRALYTICS = ("8.4.190",)  # keep in step with the ultralytics pin in pyproject.toml


class UnsupportedUltralytics(CspdetError, RuntimeError):
    """The installed ultralytics is outside the supported versions or its internals changed shape."""


def _fail(problem: str):
    raise UnsupportedUltralytics(
        f"cspdet supports ultralytics {', '.join(SUPPORTED_ULTRALYTICS)}; {problem}. "
        f"Install a supported version (pip install ultralytics=={SUPPORTED_ULTRALYTICS[-1]}), or set "
        "CSPDET_AUTOLOAD=0 to use ultralytics without cspdet. See docs/design.md."
    )


def check_ultralytics():
    """Raise UnsupportedUltralytics unless ultralytics is a supported version with the expected internals."""
    if ultralytics.__version__ not in SUPPORTED_ULTRALYTICS:
        _fail(f"found {ultralytics.__version__}")
    expected = {
        "parse_model": (tasks.parse_model, ["d", "ch", "verbose"]),
        "yaml_model_load": (tasks.yaml_model_load, ["path"]),
        "BaseModel.fuse": (tasks.BaseModel.fuse, ["self", "verbose", "imgsz"]),
        "BaseTrainer.build_optimizer": (
            BaseTrainer.build_optimizer,
            ["self", "model", "name", "lr", "momentum", "decay", "iterations"],
        ),
        "BaseTrainer.__init__": (BaseTrainer.__init__, ["self", "cfg", "overrides", "_callbacks"]),
        "check_det_dataset": (data_utils.check_det_dataset, ["dataset", "autodownload", "split"]),
        "DetectionValidator.init_metrics": (DetectionValidator.init_metrics, ["self", "model"]),
        "DetectionValidator.update_metrics": (DetectionValidator.update_metrics, ["self", "preds", "batch"]),
        "DetectionValidator.gather_stats": (DetectionValidator.gather_stats, ["self"]),
        "DetectionValidator.print_results": (DetectionValidator.print_results, ["self"]),
        "BasePredictor.__init__": (BasePredictor.__init__, ["self", "cfg", "overrides", "_callbacks"]),
        "BasePredictor.setup_source": (BasePredictor.setup_source, ["self", "source", "stride"]),
        "BasePredictor.setup_model": (BasePredictor.setup_model, ["self", "model", "verbose"]),
        "BasePredictor.stream_inference": (
            BasePredictor.stream_inference,
            ["self", "source", "model", "args", "kwargs"],
        ),
    }
    for name, (function, parameters) in expected.items():
        if list(inspect.signature(function).parameters) != parameters:
            _fail(f"{name} no longer takes {parameters}")
    if "on_train_epoch_end" not in default_callbacks:
        _fail("the on_train_epoch_end callback is gone")
    # Parse one row per proxy with upstream's parse_model and read the resolved arguments back.
    probe = {
        "nc": 1,
        "backbone": [[-1, 1, like, [16] + [False] * (rule.proxy_args - 1)] for like, rule in RULES.items()],
    }
    probe["head"], probe["backbone"][0][1] = [], 2
    try:
        layers, _ = tasks.parse_model(probe, ch=8, verbose=False)
        first = [layer[0] if isinstance(layer, nn.Sequential) else layer for layer in layers]
        resolved = [rule.resolved(layer) for rule, layer in zip(RULES.values(), first)]
    except Exception as e:  # any failure here means the internals moved
        _fail(f"parse_model no longer builds its modules as expected ({type(e).__name__}: {e})")
    if resolved != [[8, 16], [16, 16, 1], [16, 16, 1], [16, 16, 1, False]]:
        _fail(f"parse_model resolved {resolved} for the probe rows")
