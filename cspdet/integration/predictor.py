"""Ultralytics predictors fed from a frame queue: what cspdet.video needs from BasePredictor's internals.

A queue predictor is the model's own task predictor (its preprocessing, NMS, trackers and results) whose
``setup_source`` takes an iterable of ``(paths, frames, info)`` batches instead of a path it would decode itself.
``probe()`` checks the BasePredictor methods used here (``setup_source`` takes ``stride`` only from 8.3.237 on).
"""

from __future__ import annotations

from ultralytics.data.loaders import SourceTypes
from ultralytics.utils.checks import check_imgsz


def source_types(stream: bool) -> SourceTypes:
    """The ``source_type`` a frame-queue dataset reports: a live stream or a video file."""
    return SourceTypes(stream=stream)


class _QueueSource:
    """Mixin for an ultralytics predictor: its source is a ready dataset (an iterable of batches with ``bs``)."""

    def setup_source(self, source, stride: int | None = None):
        """Use ``source`` as the dataset and set the inference size the way BasePredictor.setup_source does."""
        import torchvision  # noqa: F401  (imported by ultralytics for video sources: its NMS then uses torchvision's)

        if hasattr(self.model, "imgsz") and not getattr(self.model, "dynamic", False):
            self.args.imgsz = self.model.imgsz  # exported models run at their export size
        self.imgsz = check_imgsz(self.args.imgsz, stride=stride or self.model.stride, min_dim=2)
        self.dataset, self.source_type, self.vid_writer = source, source.source_type, {}


def queue_predictor(yolo, overrides: dict):
    """Return ``yolo``'s task predictor with ``overrides``, reading from a queue, its model loaded (setup_model)."""
    from cspdet.integration.compat import require

    require("predictor", use="video inference (cspdet.video)")
    base = yolo.task_map[yolo.task]["predictor"]
    predictor = type(f"Queue{base.__name__}", (_QueueSource, base), {})(overrides=overrides, _callbacks=yolo.callbacks)
    predictor.setup_model(model=yolo.model, verbose=False)
    return predictor


def share_predictor(predictor):
    """A second predictor of the same class and arguments running the same loaded model, for another thread."""
    worker = type(predictor)(overrides=vars(predictor.args), _callbacks=predictor.callbacks)
    worker.model, worker.device = predictor.model, predictor.device
    return worker


def register_tracker(yolo):
    """Make ``yolo``'s predictors track objects with the tracker named in their ``tracker`` argument."""
    from ultralytics.trackers.track import register_tracker as register  # needs the lap package

    register(yolo, persist=False)


def probe():
    """Check the BasePredictor methods and attributes that queue predictors rely on."""
    import inspect

    from ultralytics.engine.predictor import BasePredictor

    expected = {
        "__init__": ["cfg", "overrides", "_callbacks"],
        "setup_source": ["source"],
        "setup_model": ["model", "verbose"],
        "stream_inference": ["source", "model"],
    }
    for method, parameters in expected.items():
        found = list(inspect.signature(getattr(BasePredictor, method)).parameters)[1:]
        if found[: len(parameters)] != parameters:
            raise TypeError(f"BasePredictor.{method} takes {found}, not {parameters} first")
    if "stream" not in inspect.signature(SourceTypes).parameters:
        raise TypeError("SourceTypes has no 'stream' field")
