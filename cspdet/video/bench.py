"""Helpers to check and benchmark the pipeline against ``yolo predict``: a demo model, detection readers, comparison."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.data.augment import LetterBox


def demo_model(path: str | Path, video: str | Path, imgsz: int = 320, cfg: str = "csp_wrc-n.yaml", per_image: int = 10):
    """Save an untrained model that gives image-dependent detections on ``video``, for tests and benchmarks.

    Freshly initialised weights shrink activations towards zero through the depth, so every anchor gets the same score.
    Setting the BatchNorm statistics from 16 letterboxed frames of ``video`` restores image-dependent outputs, and the
    class bias is then set so that about ``per_image`` anchors per frame score above 0.5.

    Args:
        path (str | Path): Output ``.pt``.
        video (str | Path): Video whose first 16 frames calibrate the model.
        imgsz (int): Inference size the model will be run at.
        cfg (str): Model YAML (cspdet or ultralytics).
        per_image (int): Anchors per frame to score above 0.5 before NMS.

    Returns:
        (Path): ``path``.
    """
    torch.manual_seed(0)
    model = YOLO(cfg)
    net, capture, letterbox = model.model, cv2.VideoCapture(str(video)), LetterBox(imgsz, auto=True, stride=32)
    frames = [letterbox(image=capture.read()[1]) for _ in range(16)]
    capture.release()
    images = torch.from_numpy(np.stack(frames)[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
    with torch.no_grad():
        net.train()(images)
        classifiers = [branch[-1] for branch in net.model[-1].cv3]
        for layer in classifiers:
            layer.bias.zero_()
        scores = net.eval()(images)[0][:, 4:].amax(1)  # (frames, anchors) best class score
        threshold = torch.logit(scores.flatten().quantile(1 - per_image / scores.shape[1]))
        for layer in classifiers:
            layer.bias.fill_(-float(threshold))
    model.save(path)
    return Path(path)


def read_detections(path: str | Path) -> list[np.ndarray]:
    """Read a detections JSON lines file into one (N, 6) array [x1, y1, x2, y2, score, class] per frame."""
    return [np.array(json.loads(line)["boxes"], float).reshape(-1, 6) for line in Path(path).read_text().splitlines()]


def read_yolo_labels(folder: str | Path, stem: str, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Read ``yolo predict save_txt=True save_conf=True`` labels of a video into per-frame (N, 6) pixel arrays.

    Args:
        folder (str | Path): The ``labels`` folder, holding ``<stem>_<frame>.txt`` for frames 1.. with boxes.
        stem (str): Video file stem.
        frames (int): Frames in the video.
        size (tuple[int, int]): Frame (width, height).
    """
    width, height = size
    out = []
    for frame in range(1, frames + 1):
        file = Path(folder) / f"{stem}_{frame}.txt"
        rows = np.loadtxt(file, ndmin=2) if file.exists() else np.zeros((0, 6))
        cls, xc, yc, w, h, score = (rows[:, i] for i in range(6))
        xyxy = np.stack([(xc - w / 2) * width, (yc - h / 2) * height, (xc + w / 2) * width, (yc + h / 2) * height], 1)
        out.append(np.concatenate([xyxy, score[:, None], cls[:, None]], 1))
    return out


def same_detections(a: np.ndarray, b: np.ndarray, pixels: float = 1.0, score: float = 1e-3) -> bool:
    """Whether two (N, 6) detection sets pair one to one with the same class, boxes within ``pixels``, scores within
    ``score``.
    """
    if len(a) != len(b):
        return False
    free = np.ones(len(b), bool)
    for box in a:
        close = (np.abs(b[:, :4] - box[:4]).max(1) <= pixels) & (np.abs(b[:, 4] - box[4]) <= score)
        match = np.flatnonzero(free & close & (b[:, 5] == box[5]))
        if not len(match):
            return False
        free[match[0]] = False
    return True


def mismatched_frames(a: list[np.ndarray], b: list[np.ndarray], **tolerances) -> list[int]:
    """Indices of the frames whose detections differ (see same_detections); frames missing from one side count."""
    n = max(len(a), len(b))
    return [i for i in range(n) if i >= len(a) or i >= len(b) or not same_detections(a[i], b[i], **tolerances)]
