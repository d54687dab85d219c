"""The synthetic shapes generator: deterministic COCO datasets and short videos of the same objects."""

import json

import cv2
import numpy as np
import pytest

from cspdet.data.coco import load_coco
from cspdet.data.shapes import CLASSES, _draw, render_scene, video_frames, write_dataset, write_video


def test_write_video(tmp_path):
    path = write_video(tmp_path / "sub" / "v.mp4", frames=12, size=(96, 64), fps=15, seed=3)
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12 and capture.get(cv2.CAP_PROP_FPS) == 15
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (64, 96, 3)
    first, objects = next(video_frames(12, (96, 64), 3))
    assert objects and np.abs(frame.astype(int) - first).mean() < 8  # lossy codec, same picture


def test_video_is_deterministic_and_moves():
    a = list(video_frames(5, (80, 60), seed=1))
    b = list(video_frames(5, (80, 60), seed=1))
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b, strict=True))
    assert a[0][1] != a[4][1]


@pytest.mark.parametrize("cls", range(len(CLASSES)))
@pytest.mark.parametrize("size", [8, 30, 90])
def test_box_is_the_extent_of_the_drawn_shape(cls, size):
    image = np.zeros((128, 160, 3), np.uint8)
    x, y, w, h = _draw(image, cls, (70, 60), size, 0.4, (200, 180, 90))
    ys, xs = np.nonzero(image.max(2) > 60)  # pixels at least half covered by the shape or its outline
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], [x, y, x + w, y + h], atol=1.25)


def test_boxes_are_clipped_to_the_image():
    image = np.zeros((50, 50, 3), np.uint8)
    assert _draw(image, 1, (45, -5), 30, 0.0, (255, 255, 255)) == pytest.approx([33, 0, 17, 7])
    rng = np.random.default_rng(2)
    for _ in range(30):
        _, objects = render_scene(rng, 96, 64)
        assert all(0 <= x and 0 <= y and x + w <= 96 and y + h <= 64 and min(w, h) >= 2 for _, (x, y, w, h) in objects)


def test_dataset_is_deterministic_coco(tmp_path):
    a = write_dataset(tmp_path / "a", train=6, val=3, size=96, seed=4)
    b = write_dataset(tmp_path / "b", train=6, val=3, size=96, seed=4)
    for split in ("train", "val"):
        ja, jb = (json.loads((r / "annotations" / f"instances_{split}.json").read_text()) for r in (a, b))
        assert ja == jb and len(ja["images"]) == (6 if split == "train" else 3)
        index = load_coco(a / "annotations" / f"instances_{split}.json")
        assert index.names.tolist() == list(CLASSES) and index.counts["boxes"] == len(ja["annotations"])
        assert all((a / "images" / split / im["file_name"]).is_file() for im in ja["images"])
    assert write_dataset(tmp_path / "a", train=1, val=1) == a  # an existing dataset is kept
    assert len(list((a / "images" / "train").iterdir())) == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
