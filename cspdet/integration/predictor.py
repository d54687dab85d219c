"""Ultralytics predictors fed from a frame queue: what cspdet.video needs from predictor and AutoBackend internals.

A queue predictor is the model's own task predictor (its preprocessing, NMS, trackers and results) whose
``setup_source`` takes an iterable of ``(paths, frames, info)`` batches instead of a path it would decode itself.
``cpu_threads`` gives the runtime of an exported model its worker's threads as ultralytics creates it. ``probe()``
checks what this module relies on; it works on ultralytics 8.3.0 to 8.4.x, where ``setup_source`` gained ``stride``
(8.3.237), AutoBackend moved each runtime into a ``backend`` object and gained ``format`` (8.4).
"""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path

import numpy as np
from ultralytics.data.loaders import SourceTypes
from ultralytics.engine.predictor import BasePredictor
from ultralytics.engine.results import Results
from ultralytics.utils.checks import check_imgsz

from cspdet.patching import replaced

FLAGS = {"pt": "pt", "nn_module": "pt", "jit": "torchscript", "onnx": "onnx", "xml": "openvino"}  # before 8.4
FREE_BATCH = {"pt", "torchscript"}  # formats that take any batch size even when exported without dynamic=True


def probe():
    """Raise, saying what is missing, when the installed ultralytics lacks the predictor internals used here."""
    expected = {
        BasePredictor.__init__: ["cfg", "overrides", "_callbacks"],
        BasePredictor.setup_source: ["source"],
        BasePredictor.setup_model: ["model", "verbose"],
        BasePredictor.stream_inference: ["source", "model"],
        Results.plot: ["conf", "line_width"],
    }
    for function, parameters in expected.items():
        found = list(inspect.signature(function).parameters)[1:]
        if found[: len(parameters)] != parameters:
            raise TypeError(f"{function.__qualname__} takes {found}, not {parameters} first")
    for name in ("labels", "boxes"):
        if name not in inspect.signature(Results.plot).parameters:
            raise TypeError(f"Results.plot has no '{name}' argument")
    if "stream" not in inspect.signature(SourceTypes).parameters:
        raise TypeError("SourceTypes has no 'stream' field")


def source_types(stream: bool) -> SourceTypes:
    """The ``source_type`` a frame-queue dataset reports: a live stream or a video file."""
    return SourceTypes(stream=stream)


class _QueueSource:
    """Mixin for an ultralytics predictor: its source is a ready dataset (an iterable of batches with ``bs``)."""

    def setup_source(self, source, stride: int | None = None):
        """Use ``source`` as the dataset and set the inference size the way BasePredictor.setup_source does."""
        if hasattr(self.model, "imgsz") and not getattr(self.model, "dynamic", False):
            self.args.imgsz = self.model.imgsz  # exported models run at their export size
        self.imgsz = check_imgsz(self.args.imgsz, stride=stride or self.model.stride, min_dim=2)
        self.dataset, self.source_type, self.vid_writer = source, source.source_type, {}


def queue_predictor(yolo, overrides: dict):
    """Return ``yolo``'s task predictor with ``overrides``, reading from a queue, its own model loaded (setup_model)."""
    import torchvision  # noqa: F401  (ultralytics imports it for video sources: its NMS then uses torchvision's)

    from cspdet.integration.compat import require

    require("predictor", use="video inference (cspdet.video)")

    base = yolo.task_map[yolo.task]["predictor"]
    predictor = type(f"Queue{base.__name__}", (_QueueSource, base), {})(overrides=overrides, _callbacks=yolo.callbacks)
    predictor.setup_model(model=yolo.model, verbose=False)
    return predictor


def half_precision(half: bool) -> dict:
    """The predictor argument for FP16 inference: ``quantize=16`` from 8.4.1xx on, ``half=True`` before."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    return {"quantize": 16 if half else None} if "quantize" in DEFAULT_CFG_DICT else {"half": half}


def register_tracker(yolo):
    """Make ``yolo``'s predictors track objects with the tracker named in their ``tracker`` argument."""
    from ultralytics.trackers.track import register_tracker as register  # needs the lap package

    register(yolo, persist=False)


def model_format(predictor) -> str:
    """The loaded model's format: 'pt', 'torchscript', 'onnx', 'openvino', or another of ultralytics' formats."""
    model = predictor.model
    if found := getattr(model, "format", None):
        return found
    return next((name for flag, name in FLAGS.items() if getattr(model, flag, False)), "other")


def export_batch(predictor) -> int | None:
    """The batch size a static export takes, or None when the model takes any (PyTorch, TorchScript, dynamic)."""
    model = predictor.model
    if model_format(predictor) in FREE_BATCH or getattr(model, "dynamic", False):
        return None
    return int(getattr(model, "batch", 1))


def export_shape(predictor) -> tuple[int, int] | None:
    """The (height, width) a static export letterboxes every frame to, or None when the shape follows the frames."""
    model = predictor.model
    if model_format(predictor) == "pt" or getattr(model, "dynamic", False) or not hasattr(model, "imgsz"):
        return None
    imgsz = model.imgsz
    return (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)


def runtime_format(path: str | Path) -> str | None:
    """'onnx' or 'openvino' when ``path`` is a model for ONNX Runtime or OpenVINO, else None."""
    path = Path(path)
    if path.suffix == ".onnx":
        return "onnx"
    return "openvino" if path.suffix == ".xml" or path.is_dir() and any(path.glob("*.xml")) else None


@contextlib.contextmanager
def cpu_threads(path: str | Path, threads: int | None):
    """Inside, the runtime that ultralytics creates for the export at ``path`` (ONNX Runtime, OpenVINO) runs on the CPU
    with ``threads`` threads, without busy-waiting or core pinning, so that workers sharing the cores do not
    oversubscribe them. The options go in as ultralytics creates the runtime, which it then uses as usual (IOBinding,
    inference mode), so each model loads once; other formats and OpenVINO on other devices are left alone.

    Args:
        path (str | Path): The ``.onnx`` file or ``*_openvino_model`` folder about to be loaded.
        threads (int, optional): Threads for one inference call; None leaves the runtime as ultralytics sets it.
    """
    fmt = runtime_format(path) if threads else None
    if fmt == "onnx":
        import onnxruntime as module

        class Runtime(module.InferenceSession):
            def __init__(self, model, sess_options=None, *args, **kwargs):
                options = sess_options or module.SessionOptions()
                options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                super().__init__(model, options, *args, **kwargs)

        name = "InferenceSession"
    elif fmt == "openvino":
        import openvino as module

        class Runtime(module.Core):
            def compile_model(self, model, device_name=None, config=None, **kwargs):
                if device_name == "CPU" or device_name in (None, "AUTO") and self.available_devices == ["CPU"]:
                    device_name = "CPU"  # 8.3.x asks for AUTO, which on a machine with only a CPU is the CPU
                    config = {**(config or {}), "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
                    config.update(INFERENCE_NUM_THREADS=threads, ENABLE_CPU_PINNING=False)
                return super().compile_model(model, device_name, config, **kwargs)

        name = "Core"
    else:
        yield
        return
    with replaced(module, **{name: Runtime}):
        yield


def warm_up(predictor):
    """Call an OpenVINO model once, in this thread: the first call initialises a C++ static in OpenVINO's Python
    binding, and two workers making it at once can deadlock (one holds the GIL, the other the static's guard)."""
    if model_format(predictor) != "openvino":
        return
    runtime = getattr(predictor.model, "backend", predictor.model)  # 8.4 keeps the runtime in a backend object
    compiled = getattr(runtime, "ov_compiled_model", None)
    if compiled is None:
        raise TypeError("this ultralytics keeps its OpenVINO model where cspdet.video does not look for it")
    shape = compiled.input().get_partial_shape()
    compiled(np.zeros([d.get_length() if d.is_static else 1 if i == 0 else 64 for i, d in enumerate(shape)], "f4"))
