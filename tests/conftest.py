"""Shared test set-up: offline ultralytics with a private config dir and a local font; the tiny dataset fixture.

Helpers that tests import live in tests/helpers/ (``from helpers import run, yolo, cspdet``).
"""

import os
from pathlib import Path

import pytest
from helpers import OFFLINE_ENV, write_tiny_yolo_dataset

os.environ.update(OFFLINE_ENV)
# The processes tests start cache their bytecode: environments that uv builds hold no .pyc, and without this every
# `yolo` or `python` started in one compiles torch and ultralytics anew (seconds each).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
config_dir = os.environ.get("YOLO_CONFIG_DIR") or f"{os.environ.get('TMPDIR', '/tmp')}/cspdet-tests-yolo-config"
worker = os.environ.get("PYTEST_XDIST_WORKER")  # pytest -n: each worker its own config (settings.json)
os.environ["YOLO_CONFIG_DIR"] = f"{config_dir}-{worker}" if worker else config_dir


def _offline_font():
    """Give ultralytics a local Arial.ttf (matplotlib's DejaVu Sans) so plots never try to download one."""
    import shutil

    import matplotlib

    target = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", target)


_offline_font()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Data YAML of a tiny generated YOLO-format dataset (8 train, 4 val images of 64x64)."""
    return write_tiny_yolo_dataset(tmp_path_factory.mktemp("tiny"))
