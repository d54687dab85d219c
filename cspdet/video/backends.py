"""Models for video inference: a ``.pt`` or an export loaded once per inference worker, with each backend's threads.

Inference runs the model's own ultralytics predictor, so preprocessing, NMS, trackers and detections are those of
``yolo predict``. The thread policy: on a CPU with several cores, two workers infer in parallel (one when tracking,
which needs the frames in order), each with an equal share of the cores for torch (PyTorch, TorchScript, and the
pre- and postprocessing of every format) and for its runtime (ONNX Runtime without busy-waiting, OpenVINO without
core pinning), so that the workers and the decoding and encoding threads do not oversubscribe the cores. On CUDA one
worker runs large batches in half precision. Torch's thread count is changed only while a video runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.utils import LOGGER
from ultralytics.utils.checks import is_ascii
from ultralytics.utils.torch_utils import select_device

from cspdet.integration.predictor import (
    cpu_threads,
    export_batch,
    export_shape,
    half_precision,
    model_format,
    queue_predictor,
    register_tracker,
    warm_up,
)
from cspdet.video.draw import BoxPainter, LabelCache
from cspdet.video.sources import VideoError

TRACKERS = ("bytetrack", "botsort")
BOX_TASKS = ("detect", "segment", "pose")
CPU_BATCH, CUDA_BATCH = 4, 32  # default frames per inference call
CPU_WORKERS = 2  # parallel inference workers on a multi-core CPU


@dataclass
class Backend:
    """A model loaded for the engine: one predictor per inference worker and the threads they may use.

    Args:
        path (Path): The model file or export folder.
        predictors (list[BasePredictor]): One queue predictor per worker, each with its own loaded model.
        format (str): 'pt', 'torchscript', 'onnx', 'openvino', ...
        batch (int): Frames per inference call (a static export's own batch size).
        threads (int | None): Torch threads while a video runs (CPU), None to leave torch's setting.
    """

    path: Path
    predictors: list
    format: str
    batch: int
    threads: int | None
    _painters: threading.local = field(default_factory=threading.local, repr=False)
    _labels: LabelCache = field(default_factory=LabelCache, repr=False)  # of every thread's painters

    @property
    def ascii_names(self) -> bool:
        """Whether every class name is ASCII (drawn with OpenCV's font, as ultralytics does)."""
        return all(is_ascii(name) for name in self.predictors[0].model.names.values())

    @property
    def args(self):
        """The predictors' arguments (conf, iou, imgsz, drawing options, ...)."""
        return self.predictors[0].args

    @property
    def tracking(self) -> bool:
        """Whether the predictors track objects (results carry ids)."""
        return self.args.mode == "track"

    def draw(self, result) -> np.ndarray:
        """``result`` drawn as ``yolo predict`` draws it (BGR): boxes alone straight on its frame, by a BoxPainter (one
        per inference thread and frame size); masks, keypoints and non-ASCII labels by ``Results.plot``."""
        a, boxes = self.args, result.boxes
        if result.masks is not None or result.keypoints is not None or not self.ascii_names:
            return result.plot(line_width=a.line_width, boxes=a.show_boxes, conf=a.show_conf, labels=a.show_labels)
        painters = self._painters.__dict__
        image = result.orig_img
        if (painter := painters.get(image.shape)) is None:
            painter = painters[image.shape] = BoxPainter(
                result.names, image.shape, a.line_width, a.show_boxes, a.show_conf, a.show_labels, self._labels
            )
        data = boxes.data.cpu().numpy()  # x1, y1, x2, y2, (track id,) score, class
        return painter(image, data[:, :4], data[:, -1], data[:, -2], data[:, 4] if boxes.is_track else None)

    @contextlib.contextmanager
    def threads_set(self):
        """Give torch ``threads`` threads inside, and put its previous count back after."""
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def padding_hint(self, size: tuple[int, int]) -> str | None:
        """Advice when a static export pads frames of ``size`` (width, height) to a larger shape than they need."""
        shape = export_shape(self.predictors[0])
        if shape is None:
            return None
        stride = int(self.predictors[0].model.stride)
        scale = min(shape[0] / size[1], shape[1] / size[0])
        needed = [math.ceil(round(s * scale) / stride) * stride for s in (size[1], size[0])]
        if needed[0] * needed[1] >= 0.9 * shape[0] * shape[1]:
            return None
        return (
            f"{self.path} was exported for {shape[0]}x{shape[1]} inputs, but these frames need only "
            f"{needed[0]}x{needed[1]}: export with dynamic=True or imgsz={needed[0]},{needed[1]} to save "
            f"{1 - needed[0] * needed[1] / (shape[0] * shape[1]):.0%} of the inference work"
        )


def load_backend(
    model: str | Path,
    imgsz: int | list[int] = 640,
    conf: float | None = None,
    iou: float = 0.7,
    batch: int | None = None,
    device: str | None = None,
    tracker: str | None = None,
) -> Backend:
    """Load an ultralytics model for video inference: one predictor per inference worker, threads set per backend.

    Args:
        model (str | Path): A cspdet or other ultralytics ``.pt``, or its export: ``.onnx``, ``*_openvino_model/``,
            ``.torchscript`` (or any other format ultralytics runs, with one worker and its own threads).
        imgsz (int | list[int]): Inference size, as ``yolo predict imgsz=`` (exports run at their export size).
        conf (float, optional): Confidence threshold; ultralytics' default when None (0.25, or 0.1 when tracking).
        iou (float): NMS IoU threshold.
        batch (int, optional): Frames per inference call; 32 on CUDA and 4 on CPU when None. A static export takes
            its own batch size.
        device (str, optional): ``cpu``, ``0``, ... as ``yolo predict device=``; CUDA runs in half precision.
        tracker (str, optional): ``bytetrack`` or ``botsort`` to track objects with ultralytics' trackers.

    Returns:
        (Backend): The loaded model, ready for ``predict_video``.

    Examples:
        >>> backend = load_backend("best_openvino_model", imgsz=320)
        >>> backend.format, backend.batch, len(backend.predictors), backend.threads
        ('openvino', 1, 2, 1)
    """
    if tracker is not None and tracker not in TRACKERS:
        raise ValueError(f"tracker={tracker!r}: use one of {', '.join(TRACKERS)}")
    if not Path(model).exists():
        raise VideoError(f"{model}: no such model file")
    yolo = YOLO(model)
    if yolo.task not in BOX_TASKS:
        raise VideoError(f"{model}: a '{yolo.task}' model; video inference needs boxes ({', '.join(BOX_TASKS)})")
    kind = select_device(device, verbose=False).type
    cuda = kind == "cuda"
    args = {
        **yolo.overrides,
        "mode": "track" if tracker else "predict",
        "imgsz": imgsz,
        "conf": (0.1 if tracker else 0.25) if conf is None else conf,
        "iou": iou,
        "batch": batch or (CUDA_BATCH if cuda else CPU_BATCH),
        "device": device,
        "rect": True,  # as Model.predict: minimal letterbox padding
        "save": False,
        "verbose": False,
        "embed": None,
        **half_precision(cuda),
    }
    if tracker:
        args["tracker"] = f"{tracker}.yaml"
        register_tracker(yolo)
    cores = os.cpu_count() or 1
    workers = CPU_WORKERS if kind == "cpu" and cores > 1 and not tracker else 1
    threads = max(1, cores // workers) if kind == "cpu" else None
    with cpu_threads(model, threads):
        predictors = [queue_predictor(yolo, args) for _ in range(workers)]
    for predictor in predictors:
        warm_up(predictor)
    fixed = export_batch(predictors[0])
    if fixed and batch and batch != fixed:
        LOGGER.warning(f"{model}: a static export takes batches of {fixed}, not {batch}: using {fixed}")
    return Backend(Path(model), predictors, model_format(predictors[0]), fixed or args["batch"], threads)
