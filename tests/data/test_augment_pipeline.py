"""Albumentations pipelines from YAML: built as declared, boxes follow the image, bad pipelines fail early."""

import numpy as np
import pytest
from ultralytics.data.augment import Albumentations
from ultralytics.utils.instance import Instances

from cspdet.data import find_bundled
from cspdet.data.augment import PipelineError, load_pipeline

W, H = 64, 48
BOX = (8, 4, 28, 20)  # x1, y1, x2, y2 in pixels


def pipeline(tmp_path, text: str):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def augment(transforms, box=BOX):
    """Run ultralytics' Albumentations step (as training runs it) on an image with one white box."""
    image = np.zeros((H, W, 3), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    labels = {
        "img": image,
        "cls": np.array([[1.0]]),
        "instances": Instances(
            np.array([box], np.float32), np.zeros((0, 1000, 2), np.float32), bbox_format="xyxy", normalized=False
        ),
    }
    out = Albumentations(p=1.0, transforms=transforms)(labels)
    h, w = out["img"].shape[:2]
    instances = out["instances"]
    instances.convert_bbox("xyxy")
    instances.denormalize(w, h)
    return out["img"], instances.bboxes, out["cls"]


def white_extent(image):
    ys, xs = np.nonzero(image[..., 0] > 127)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_flip_moves_the_box_with_the_image(tmp_path):
    transforms = load_pipeline(pipeline(tmp_path, "transforms:\n  - HorizontalFlip: {p: 1.0}\n"))
    image, boxes, cls = augment(transforms)
    np.testing.assert_allclose(boxes, [[W - 28, 4, W - 8, 20]], atol=1e-3)
    assert white_extent(image) == [W - 28, 4, W - 8, 20] and cls.tolist() == [[1.0]]


@pytest.mark.parametrize("seed", range(4))
def test_rotate90_moves_the_box_with_the_image(tmp_path, seed):
    import torch

    torch.manual_seed(seed)  # ultralytics seeds albumentations from torch; each seed gives one of the 4 rotations
    transforms = load_pipeline(pipeline(tmp_path, "transforms:\n  - RandomRotate90: {p: 1.0}\n"))
    image, boxes, _ = augment(transforms)
    np.testing.assert_allclose(boxes[0], white_extent(image), atol=1e-3)


def test_compositions_and_bare_names(tmp_path):
    text = "transforms:\n  - OneOf:\n      p: 1.0\n      transforms:\n        - VerticalFlip: {p: 1.0}\n  - ToGray\n"
    transforms = load_pipeline(pipeline(tmp_path, text))
    assert [type(t).__name__ for t in transforms] == ["OneOf", "ToGray"]
    image, boxes, _ = augment(transforms)
    np.testing.assert_allclose(boxes, [[8, H - 20, 28, H - 4]], atol=1e-3)


def test_bundled_default_pipeline():
    transforms = load_pipeline("augment/default.yaml")
    assert transforms and load_pipeline(find_bundled("augment/default.yaml"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("transforms:\n  - HorizontalFlp: {p: 0.5}\n", r"transforms\[0\]: 'HorizontalFlp' is not an albumentations .*"
         "did you mean HorizontalFlip"),
        ("transforms:\n  - Blur: {blur_limt: 3}\n", r"transforms\[0\]: 'Blur' has no argument blur_limt"),
        ("transforms:\n  - Blur: {blur_limit: x}\n", r"transforms\[0\]: Blur\(\{'blur_limit': 'x'\}\) failed"),
        ("transforms:\n  - OneOf: {transforms: [Nope]}\n", r"transforms\[0\].OneOf.transforms\[0\]: 'Nope' is not"),
        ("transforms:\n  - Blur: 3\n", r"arguments of 'Blur' must be a mapping"),
        ("transforms: []\n", r"expected a non-empty 'transforms:' list"),
        ("- Blur\n", r"not a valid YAML file"),
        ("transforms:\n  - os: {}\n", r"'os' is not an albumentations"),
    ],
)  # fmt: skip
def test_bad_pipelines_name_the_file_and_entry(tmp_path, text, message):
    path = pipeline(tmp_path, text)
    with pytest.raises(PipelineError, match=message) as e:
        load_pipeline(path)
    assert str(path) in str(e.value)


def test_missing_pipeline_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_pipeline(tmp_path / "nope.yaml")
