"""Deterministic synthetic "shapes" detection data: COCO-format image sets and short videos of the same objects."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from ultralytics.utils import TQDM

CLASSES = ("circle", "square", "triangle", "star", "cross")
CATEGORY_IDS = (1, 3, 5, 7, 9)  # non-contiguous on purpose, as COCO's are
VERSION = 1  # bump, with the folder name in datasets/shapes.yaml, when the generated images or annotations change


def _outline(cls: int, size: float, angle: float) -> np.ndarray:
    """Return the polygon (N, 2) of a shape of class ``cls`` centred at 0 with diameter ``size``."""
    r = size / 2
    if cls == 0:
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        points = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif cls == 1:
        points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * r * 0.8
    elif cls == 2:
        t = np.array([90, 210, 330]) * np.pi / 180
        points = np.stack([np.cos(t), -np.sin(t)], 1) * r
    elif cls == 3:
        t = np.arange(10) * np.pi / 5 + np.pi / 2
        points = np.stack([np.cos(t), -np.sin(t)], 1) * np.where(np.arange(10) % 2, 0.42 * r, r)[:, None]
    else:
        a, b = r, r * 0.33
        points = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b],
                           [-a, -b], [-b, -b]])  # fmt: skip
    if cls != 0:
        c, s = np.cos(angle), np.sin(angle)
        points = points @ np.array([[c, s], [-s, c]])
    return points


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered background: smooth colour noise, fine grain, and thin lines, arcs and specks that are no class."""
    low = rng.integers(70, 186, (rng.integers(2, 6), rng.integers(2, 6), 3)).astype(np.uint8)
    image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    image += rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 9)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, x1 = rng.integers(0, width, 2)
        y0, y1 = rng.integers(0, height, 2)
        kind = rng.integers(3)
        if kind == 0:
            cv2.line(image, (int(x0), int(y0)), (int(x1), int(y1)), color, int(rng.integers(1, 3)), cv2.LINE_AA)
        elif kind == 1:
            axes = (int(rng.integers(5, width // 3)), int(rng.integers(5, height // 3)))
            cv2.ellipse(image, (int(x0), int(y0)), axes, float(rng.uniform(0, 360)), 0, float(rng.uniform(40, 200)),
                        color, 1, cv2.LINE_AA)  # fmt: skip
        else:
            cv2.circle(image, (int(x0), int(y0)), int(rng.integers(1, 3)), color, -1, cv2.LINE_AA)
    return image


def _draw(image: np.ndarray, cls: int, center, size: float, angle: float, color) -> list[float]:
    """Draw one shape; return its box [x, y, w, h] clipped to the image (w or h may be 0 when it is outside)."""
    center = np.asarray(center, np.float64)
    points = _outline(cls, size, angle) + center
    border = max(1.0, size / 24)
    for scale, fill in ((1.0, tuple(int(c * 0.55) for c in color)), (1 - 2 * border / size, color)):  # rim, then body
        polygon = np.round((center + (points - center) * scale - 0.5) * 16).astype(np.int32)  # OpenCV pixel centres
        cv2.fillPoly(image, [polygon], fill, cv2.LINE_AA, shift=4)  # 4 fractional bits: sub-pixel accurate edges
    h, w = image.shape[:2]
    x0, y0 = np.clip(points.min(0), 0, (w, h))
    x1, y1 = np.clip(points.max(0), 0, (w, h))
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(120, 256), rng.integers(150, 256)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _overlap(box, boxes) -> float:
    """Largest fraction of any box in ``boxes`` covered by ``box`` (all [x, y, w, h])."""
    worst = 0.0
    for x, y, w, h in boxes:
        iw = max(0.0, min(box[0] + box[2], x + w) - max(box[0], x))
        ih = max(0.0, min(box[1] + box[3], y + h) - max(box[1], y))
        worst = max(worst, iw * ih / max(w * h, 1e-6), iw * ih / max(box[2] * box[3], 1e-6))
    return worst


def render_scene(rng: np.random.Generator, width: int, height: int, max_objects: int = 10):
    """Render one image of shapes; return ``(image, [(class index, [x, y, w, h]), ...])``.

    One image in 20 is a background; the others have 2 to ``max_objects`` shapes of log-uniform sizes from 10 px to
    half the shorter side, overlapping up to half of either box.
    """
    image = _background(rng, width, height)
    objects = []
    short = min(width, height)
    for _ in range(0 if rng.random() < 0.05 else int(rng.integers(min(2, max_objects), max_objects + 1))):
        for _try in range(10):
            cls = int(rng.integers(len(CLASSES)))
            size = float(np.exp(rng.uniform(np.log(10), np.log(0.5 * short))))
            center = rng.uniform(0.2 * size, (width - 0.2 * size, height - 0.2 * size))  # may cross the border
            angle = float(rng.uniform(0, 2 * np.pi))
            box = _outline(cls, size, angle) + center
            xyxy = np.concatenate([box.min(0), box.max(0)])
            xywh = [*xyxy[:2], *(xyxy[2:] - xyxy[:2])]
            if _overlap(xywh, [b for _, b in objects]) <= 0.5:
                break
        else:
            continue
        box = _draw(image, cls, center, size, angle, _color(rng))
        if box[2] >= 2 and box[3] >= 2:
            objects.append((cls, box))
    return image, objects


def write_video(path, frames: int = 60, size=(320, 240), fps: float = 30, seed: int = 0) -> Path:
    """Write a short MP4 (OpenCV 'mp4v') of shapes moving and bouncing over a cluttered background.

    Args:
        path (str | Path): Output file; parent folders are created.
        frames (int): Number of frames.
        size (tuple): Frame (width, height).
        fps (float): Frames per second.
        seed (int): Seed; the same arguments always give the same frames.

    Returns:
        (Path): ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, tuple(size))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot open an 'mp4v' video writer")
    try:
        for image, _ in video_frames(frames, size, seed):
            writer.write(image)
    finally:
        writer.release()
    return path


def video_frames(frames: int = 60, size=(320, 240), seed: int = 0):
    """Yield ``(BGR frame, [(class index, [x, y, w, h]), ...])`` of the sequence that ``write_video`` writes."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = _background(rng, width, height)
    short = min(width, height)
    n = int(rng.integers(3, 7))
    classes = rng.integers(len(CLASSES), size=n)
    sizes = np.exp(rng.uniform(np.log(12), np.log(0.35 * short), n))
    centers = rng.uniform(0, 1, (n, 2)) * (width, height)
    velocity = rng.uniform(-1, 1, (n, 2)) * short / 40
    angles, spin = rng.uniform(0, 2 * np.pi, n), rng.uniform(-0.08, 0.08, n)
    colors = [_color(rng) for _ in range(n)]
    for _ in range(frames):
        image = background.copy()
        objects = []
        for k in range(n):
            box = _draw(image, int(classes[k]), centers[k], sizes[k], angles[k], colors[k])
            if box[2] >= 2 and box[3] >= 2:
                objects.append((int(classes[k]), box))
        yield image, objects
        centers += velocity
        for axis, limit in enumerate((width, height)):
            bounce = (centers[:, axis] < 0) | (centers[:, axis] > limit)
            velocity[bounce, axis] *= -1
            centers[:, axis] = np.clip(centers[:, axis], 0, limit)
        angles += spin


def coco_dict(rng: np.random.Generator, count: int, size: int, split: str, image_dir: Path) -> dict:
    """Render ``count`` images of ``size`` x ``size`` pixels into ``image_dir``; return their COCO instances dict."""
    images, annotations = [], []
    for image_id in TQDM(range(1, count + 1), desc=f"Rendering shapes {split}"):
        image, objects = render_scene(rng, size, size)
        file_name = f"{split}_{image_id:06d}.jpg"
        cv2.imwrite(str(image_dir / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for cls, box in objects:
            box = [round(v, 2) for v in box]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[cls],
                    "bbox": box,
                    "area": round(box[2] * box[3], 2),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": n, "supercategory": "shape"} for i, n in zip(CATEGORY_IDS, CLASSES, strict=True)]
    return {"info": {"description": f"cspdet synthetic shapes v{VERSION}"}, "images": images,
            "annotations": annotations, "categories": categories}  # fmt: skip


def write_dataset(root, train: int = 800, val: int = 160, size: int = 160, seed: int = 0) -> Path:
    """Write the shapes dataset in COCO layout: ``images/{train,val}/`` and ``annotations/instances_{split}.json``.

    The folder appears complete or not at all (it is built beside ``root`` and renamed); an existing ``root`` is kept.

    Args:
        root (str | Path): Dataset folder.
        train (int): Number of training images.
        val (int): Number of validation images.
        size (int): Image width and height in pixels.
        seed (int): Seed; the same arguments always give the same dataset.

    Returns:
        (Path): ``root``.
    """
    root = Path(root)
    if root.is_dir() and any(root.iterdir()):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        for k, (split, count) in enumerate((("train", train), ("val", val))):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "annotations").mkdir(exist_ok=True)
            d = coco_dict(np.random.default_rng([seed, k]), count, size, split, tmp / "images" / split)
            (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(d))
        if root.is_dir():
            root.rmdir()  # empty
        os.replace(tmp, root)
    except OSError:
        if not (root.is_dir() and any(root.iterdir())):  # not written by a concurrent run either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
