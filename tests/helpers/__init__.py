"""Helpers shared by the tests: the offline environment, the commands of this environment, tiny datasets.

``helpers.coco_cases`` (COCO scoring cases), ``helpers.coco_files`` (small COCO datasets) and ``helpers.video`` (test
clips) hold the rest.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "NO_ALBUMENTATIONS_UPDATE": "1"}


def run(args, cwd=None, env=None, check=True, timeout=600):
    """Run a command (a list) with the offline environment; return the CompletedProcess with text output."""
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def yolo(*args, **kwargs):
    """Run the stock `yolo` CLI of this interpreter's environment."""
    return run([str(Path(sys.executable).with_name("yolo")), *args], **kwargs)


def cspdet(*args, **kwargs):
    """Run the `cspdet` command of this interpreter's environment."""
    return run([str(Path(sys.executable).with_name("cspdet")), *args], **kwargs)


def write_tiny_yolo_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 64) -> Path:
    """Write a tiny 2-class YOLO-format dataset of filled rectangles; return its data YAML."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            image = np.full((size, size, 3), 114, np.uint8)
            lines = []
            for cls in (0, 1):
                w, h = rng.integers(size // 5, size // 2, 2)
                x, y = rng.integers(0, size - w), rng.integers(0, size - h)
                color = (0, 0, 255) if cls == 0 else (255, 0, 0)
                cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), color, -1)
                lines.append(f"{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
            cv2.imwrite(str(root / "images" / split / f"{k:03d}.png"), image)
            (root / "labels" / split / f"{k:03d}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: blue\n")
    return data
