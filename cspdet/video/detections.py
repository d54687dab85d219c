"""Per-frame detections as files hold them, and what "the same detections" means.

``read_detections`` reads the JSON lines of ``cspdet video --detections``, ``read_yolo_labels`` the label files of
``yolo predict save_txt=True save_conf=True`` on a video; ``same_detections`` and ``mismatched_frames`` compare them
within the tolerances cspdet promises against ``yolo predict``: the same classes, boxes within 1 pixel, scores within
1e-3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


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
