"""Boxes drawn as ``yolo predict`` draws them, at a fraction of the cost.

``Results.plot`` spends most of its time per box: tensor indexing, an anti-aliased thick rectangle, text measured and
rendered. Here every box edge is an array slice (the solid band that OpenCV's thick line paints), and every label is
rendered once by ultralytics' own ``Annotator.box_label`` and then copied from a cache (one for all the inference
threads' painters, so that each label is rendered once per video). Colours, line width, label
text, placement and drawing order are those of ``Results.plot``; only the faint anti-aliased fringe of the edges and
the tails of descenders below a label's background are left out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np
from ultralytics.utils.plotting import Annotator, colors

# Rendered labels kept, in bytes: at 640x360 (about 7 kB a label) every class of COCO with the scores seen in a clip
LABEL_CACHE_BYTES = 64 << 20


class LabelCache:
    """Rendered labels by key, for the painters of several threads: at most ``budget`` bytes, the least recently used
    dropped first.

    Args:
        budget (int): Bytes of label pixels kept.
    """

    def __init__(self, budget: int = LABEL_CACHE_BYTES):
        """An empty cache."""
        self.items, self.bytes, self.budget, self.lock = OrderedDict(), 0, budget, threading.Lock()

    def get(self, key) -> np.ndarray | None:
        """The label stored under ``key``, or None."""
        with self.lock:
            if (patch := self.items.get(key)) is not None:
                self.items.move_to_end(key)
            return patch

    def put(self, key, patch: np.ndarray) -> np.ndarray:
        """Store ``patch`` under ``key``, dropping the oldest beyond the budget; return the label kept (another
        thread's, when it stored one first)."""
        with self.lock:
            if (kept := self.items.get(key)) is not None:
                return kept
            self.items[key], self.bytes = patch, self.bytes + patch.nbytes
            while self.bytes > self.budget:
                self.bytes -= self.items.popitem(last=False)[1].nbytes
            return patch


class BoxPainter:
    """Draws detection boxes and their labels on BGR frames of one size, in place.

    Args:
        names (dict[int, str]): Class names, in ASCII (ultralytics draws others with PIL: use ``Results.plot``).
        shape (tuple[int, int, int]): Frame shape (height, width, 3).
        line_width (int, optional): Box line width; ultralytics' default for the frame size when None.
        boxes (bool): Draw the boxes at all.
        conf (bool): Put the score in the label.
        labels (bool): Put the class name (and track id) in the label.
        cache (LabelCache, optional): Rendered labels, shared with the painters of other threads and frame sizes
            that draw the same names (keyed by style too); a cache of its own when None.
    """

    def __init__(self, names: dict, shape: tuple, line_width=None, boxes=True, conf=True, labels=True, cache=None):
        """Measure the style once: line width, font scale and thickness of ultralytics' Annotator for this size."""
        self.names, self.shape, self.show, self.conf, self.labels = names, shape[:2], boxes, conf, labels
        self.cache = LabelCache() if cache is None else cache
        style = Annotator(np.zeros(shape, np.uint8), line_width)
        self.lw, self.font = style.lw, (style.sf, style.tf)
        self.half = _band(self.lw)
        self.label_height = cv2.getTextSize("0", 0, fontScale=self.font[0], thickness=self.font[1])[0][1] + 3
        self.canvas, self.edges = np.zeros((0, 0, 3), np.uint8), {}

    def label(self, text: str, color: tuple, inside: bool) -> np.ndarray:
        """The label ``text`` on its background as ``Annotator.box_label`` renders it above a box (with the box's edge
        below it) or, ``inside``, just inside the box's top edge; cached."""
        key = (text, color, inside, self.lw, self.font)
        if (patch := self.cache.get(key)) is not None:
            return patch
        width = cv2.getTextSize(text, 0, fontScale=self.font[0], thickness=self.font[1])[0][0]
        h = self.label_height
        if self.canvas.shape[1] < width + 2:  # wide enough for the label and the box below it
            self.canvas = np.zeros((2 * h + 2 * self.lw + 2, max(width + 2, 2 * self.canvas.shape[1]), 3), np.uint8)
            self.annotator = Annotator(self.canvas, self.lw)  # draws on the canvas in place
        canvas = self.canvas
        canvas[:, : width + 2] = 0
        top = 0 if inside else h  # box_label puts the label inside when the box's top is above the label height
        self.annotator.box_label([0, top, width + 1, len(canvas) - 1], text, color)
        rows = h + 1 if inside else h + self.half + 1  # the background's rows (and the edge below an outside one)
        return self.cache.put(key, canvas[:rows, : width + 1].copy())

    def _edges(self, color: tuple) -> tuple[np.ndarray, np.ndarray]:
        """A horizontal and a vertical edge of ``color`` as long as the frame, to copy pieces from."""
        height, width = self.shape
        band = 2 * self.half + 1
        return np.full((band, width, 3), color, np.uint8), np.full((height, band, 3), color, np.uint8)

    def texts(self, classes: list[int], scores: list[float], ids: list[int] | None) -> list[str | None]:
        """Each box's label text, as ``Results.plot`` writes it."""
        names = [self.names[c] for c in classes]
        if ids is not None:
            names = [f"id:{i} {name}" for i, name in zip(ids, names)]
        if self.labels:
            return [f"{name} {score:.2f}" for name, score in zip(names, scores)] if self.conf else names
        return [f"{score:.2f}" for score in scores] if self.conf else [None] * len(names)

    def __call__(self, image: np.ndarray, xyxy: np.ndarray, classes, scores, ids=None) -> np.ndarray:
        """Draw boxes ``xyxy`` (N, 4) with their ``classes``, ``scores`` and track ``ids`` on ``image``, the last box
        first, as ``Results.plot`` does, and return ``image``."""
        if not self.show or not len(xyxy):
            return image
        height, width = self.shape
        half, h = self.half, self.label_height
        corners = xyxy.astype(int)  # truncated, as box_label's int()
        outer = np.concatenate([corners - half, corners + half + 1], 1).clip(0, [width, height] * 4)
        classes = np.asarray(classes).astype(int).tolist()
        ids = None if ids is None else np.asarray(ids).astype(int).tolist()
        texts = self.texts(classes, np.asarray(scores).tolist(), ids)
        edges, label = self.edges, self.label
        for (x1, y1, _, _), (l1, t1, l2, t2, r1, b1, r2, b2), c, text in reversed(
            list(zip(corners.tolist(), outer.tolist(), classes, texts))
        ):
            color = colors(c, True)
            if (pair := edges.get(color)) is None:
                pair = edges[color] = self._edges(color)
            across, down = pair
            image[t1:b1, l1:r2] = across[: b1 - t1, : r2 - l1]  # top edge
            image[t2:b2, l1:r2] = across[: b2 - t2, : r2 - l1]  # bottom edge
            image[t1:b2, l1:r1] = down[: b2 - t1, : r1 - l1]  # left edge
            image[t1:b2, l2:r2] = down[: b2 - t1, : r2 - l2]  # right edge
            if text is None:
                continue
            # above the box, or just inside it when there is no room above; moved left where it would leave the frame
            patch = label(text, color, y1 < h)
            top, x = y1 if y1 < h else y1 - h, min(x1, width - patch.shape[1] + 1)
            y0, x0, y_end, x_end = max(top, 0), max(x, 0), min(top + len(patch), height), min(x + patch.shape[1], width)
            if y_end > y0 and x_end > x0:
                image[y0:y_end, x0:x_end] = patch[y0 - top : y_end - top, x0 - x : x_end - x]
        return image


def _band(thickness: int) -> int:
    """How far OpenCV's rectangle edge of ``thickness`` reaches on each side of its line (its solid core)."""
    canvas = np.zeros((4 * thickness + 8, 1), np.uint8)
    middle = 2 * thickness + 4
    cv2.line(canvas, (0, middle), (0, middle), 255, thickness, cv2.LINE_8)
    return int(middle - np.flatnonzero(canvas[:, 0])[0])
