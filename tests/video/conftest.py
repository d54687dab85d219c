"""Fixtures for cspdet.video: PyAV-written shapes clips, a demo model calibrated on them, a loaded backend.

The offline environment comes from tests/conftest.py; clip helpers are in tests/helpers/video.py.
"""

from pathlib import Path

import pytest
from helpers.video import write_clip

IMGSZ = 160  # the 320x240 clips are letterboxed to 160x128: small and fast


@pytest.fixture(scope="session")
def imgsz() -> int:
    """Inference size used by the video tests."""
    return IMGSZ


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """A 60-frame 320x240 H.264 shapes clip at 30 fps, from 0.5 s on."""
    return write_clip(tmp_path_factory.mktemp("clip") / "shapes.mp4")


@pytest.fixture(scope="session")
def model(tmp_path_factory, clip) -> Path:
    """An untrained csp_wrc-n .pt calibrated on ``clip`` so that it detects a few boxes per frame."""
    from cspdet.research.video_bench import demo_model

    return demo_model(tmp_path_factory.mktemp("model") / "demo.pt", clip, imgsz=IMGSZ)


@pytest.fixture(scope="session")
def backend(model):
    """``model`` loaded for video inference (batch 4, CPU)."""
    from cspdet.video import load_backend

    return load_backend(model, imgsz=IMGSZ, batch=4, device="cpu")
