"""Fixtures for the video pipeline: a synthetic shapes video, a demo model calibrated on it, the CLI in a subprocess.

Helpers are fixtures (not imports) so that this conftest never shadows the top-level one for other test modules.
The offline environment comes from tests/conftest.py, which sets it in os.environ for every subprocess.
"""

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "video_infer.py"
IMGSZ = 160  # the 320x240 videos are letterboxed to 160x128: small and fast


def _video_info(path) -> tuple[int, float, int, int]:
    """(frames that actually decode, fps, width, height) of a video file."""
    capture = cv2.VideoCapture(str(path))
    fps, width, height = capture.get(cv2.CAP_PROP_FPS), capture.get(3), capture.get(4)
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()
    return frames, fps, int(width), int(height)


def _cli(*args, check=True, timeout=300) -> subprocess.CompletedProcess:
    """Run tools/video_infer.py as a user would; fail with its output when ``check`` and it exits non-zero."""
    result = subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def imgsz() -> int:
    """Inference size used by every video test."""
    return IMGSZ


@pytest.fixture(scope="session")
def video_info():
    """``video_info(path)``: (decodable frames, fps, width, height)."""
    return _video_info


@pytest.fixture(scope="session")
def cli():
    """``cli(*args, check=True)``: tools/video_infer.py in a subprocess."""
    return _cli


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    """A 60-frame 320x240 shapes video at 30 fps (mp4v)."""
    from cspdet.data.shapes import write_video

    return write_video(tmp_path_factory.mktemp("video") / "shapes.mp4", frames=60, size=(320, 240), fps=30, seed=0)


@pytest.fixture(scope="session")
def model(tmp_path_factory, video) -> Path:
    """An untrained csp_wrc-n .pt calibrated on ``video`` so that it detects boxes on it."""
    from cspdet.video.bench import demo_model

    return demo_model(tmp_path_factory.mktemp("model") / "demo.pt", video, imgsz=IMGSZ)


@pytest.fixture(scope="session")
def predictor(model):
    """An in-process predictor for ``model`` (batch 4, CPU)."""
    from cspdet.video import load_predictor

    return load_predictor(model, imgsz=IMGSZ, batch=4, device="cpu")
