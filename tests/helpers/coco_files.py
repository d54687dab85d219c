"""Small COCO-format datasets written on the spot: images, instances JSONs and data YAMLs (test helpers)."""

import json
from pathlib import Path

import cv2
import numpy as np

# Non-contiguous category ids, listed out of order: class k is the k-th by id (3 -> 0 'cat', 17 -> 1 'dog', 90 -> 2)
CATEGORIES = [{"id": 90, "name": "zebra"}, {"id": 3, "name": "cat"}, {"id": 17, "name": "dog"}]


def write_image(path: Path, width: int, height: int, boxes=()) -> Path:
    """Write a gray image with a filled coloured rectangle for every [x, y, w, h] box."""
    image = np.full((height, width, 3), 114, np.uint8)
    for k, (x, y, w, h) in enumerate(boxes):
        color = ((0, 0, 255), (255, 0, 0), (0, 255, 0))[k % 3]
        cv2.rectangle(image, (round(x), round(y)), (round(x + w) - 1, round(y + h) - 1), color, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def _area(box) -> float:
    valid = isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
    return float(box[2] * box[3]) if valid else 0.0


def coco_json(path: Path, images: list, annotations: list, categories=CATEGORIES) -> Path:
    """Write a COCO instances JSON; annotations get an id, iscrowd=0 and the box area unless given."""
    annotations = [{"id": k, "iscrowd": 0, "area": _area(a.get("bbox")), **a} for k, a in enumerate(annotations, 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_coco_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 64) -> Path:
    """A COCO-layout dataset of rectangles with non-contiguous category ids and one background per split.

    Returns its data YAML (without ``names``: they come from the JSON).
    """
    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("val", n_val)):
        images, annotations = [], []
        for i in range(1, count + 1):
            boxes = (
                []
                if i == count
                else [[*rng.integers(0, size // 2, 2), *rng.integers(8, size // 2, 2)] for _ in range(2)]
            )
            boxes = [[float(v) for v in b] for b in boxes]
            name = f"{i:03d}.jpg"
            write_image(root / "images" / split / name, size, size, boxes)
            images.append({"id": 100 + i, "file_name": name, "width": size, "height": size})
            annotations += [
                {"image_id": 100 + i, "category_id": (3, 17, 90)[k % 3], "bbox": b} for k, b in enumerate(boxes)
            ]
        coco_json(root / "annotations" / f"instances_{split}.json", images, annotations)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nannotations:\n"
        "  train: annotations/instances_train.json\n  val: annotations/instances_val.json\n"
    )
    return data


ONE_FOLDER = {"train": 6, "val": 3, "test": 2}  # images per split, all in one images/ folder (as BCCD)


def write_one_folder_dataset(root: Path) -> Path:
    """A COCO layout whose splits share the folder images/, each JSON listing its own images (val: 2 boxes each)."""
    k = 0
    for split, count in ONE_FOLDER.items():
        images, annotations = [], []
        for _ in range(count):
            k += 1
            boxes = [[4.0 + k, 4.0, 20.0, 16.0]] + ([[30.0, 30.0, 12.0, 20.0]] if split == "val" else [])
            write_image(root / "images" / f"img_{k:03d}.jpg", 64, 64, boxes)
            images.append({"id": k, "file_name": f"img_{k:03d}.jpg", "width": 64, "height": 64})
            annotations += [{"image_id": k, "category_id": 3, "bbox": b} for b in boxes]
        coco_json(root / "annotations" / f"instances_{split}.json", images, annotations)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\n"
        + "".join(f"{split}: images\n" for split in ONE_FOLDER)
        + "annotations:\n"
        + "".join(f"  {split}: annotations/instances_{split}.json\n" for split in ONE_FOLDER)
    )
    return data


def tree(root: Path) -> dict:
    """Every path under ``root`` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}
