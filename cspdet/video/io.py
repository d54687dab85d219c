"""Video sources and outputs: find and open sources with clear errors, stage outputs in temporary files."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ultralytics.data.utils import VID_FORMATS

from cspdet.errors import CspdetError

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}  # output codec by suffix


class VideoError(CspdetError):
    """A source or output that cannot be used; the message names it and says why."""


@dataclass
class Video:
    """An opened source: its capture, first decoded frame, frame rate and the frame count its container announces.

    Args:
        name (str): The source as given (path, webcam index or URL).
        capture (cv2.VideoCapture): The open capture, positioned after ``first``.
        first (np.ndarray): The first frame (BGR), read while opening so that undecodable sources fail early.
        fps (float): Frames per second (30 when the source does not say, as some webcams and streams).
        frames (int): Frames announced by the container, 0 when unknown (live sources).
    """

    name: str
    capture: cv2.VideoCapture
    first: np.ndarray
    fps: float
    frames: int


def find_sources(source: str | int | Path) -> list[str | int]:
    """Expand a source into the videos it names: a video file, each video of a folder, a webcam index or a URL."""
    text = str(source)
    if text.isdigit():
        return [int(text)]
    if "://" in text:
        return [text]
    path = Path(text)
    if path.is_dir():
        videos = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix[1:].lower() in VID_FORMATS)
        if not videos:
            raise VideoError(f"{path}: folder contains no videos ({', '.join(sorted(VID_FORMATS))})")
        return videos
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    return [text]


def open_video(source: str | int) -> Video:
    """Open a video file, webcam index or stream URL and decode its first frame, or raise a VideoError saying why."""
    is_file = isinstance(source, str) and "://" not in source
    if is_file and not Path(source).is_file():
        raise VideoError(f"{source}: no such file")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise VideoError(
            f"{source}: OpenCV cannot open it as a video (not a video, an unsupported container or codec, or a "
            "damaged file such as an MP4 cut off before its index)"
            if is_file
            else f"{source}: cannot open this camera or stream"
        )
    frames = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    fps = capture.get(cv2.CAP_PROP_FPS)
    ok, first = capture.read()
    if not ok:
        capture.release()
        raise VideoError(
            f"{source}: none of its {frames} frames could be decoded (unsupported codec or corrupt data)"
            if frames
            else f"{source}: the video has no frames"
        )
    return Video(str(source), capture, first, fps if math.isfinite(fps) and fps > 0 else 30.0, frames)


def check_output(path: str | Path) -> Path:
    """Return ``path`` as a Path if its suffix names a video format this module writes, else raise a VideoError."""
    path = Path(path)
    if path.suffix.lower() not in FOURCC:
        raise VideoError(f"{path}: unsupported output video suffix '{path.suffix}', use one of {', '.join(FOURCC)}")
    return path


class StagedFile:
    """A hidden temporary sibling of ``path``, moved into place by ``commit()`` or deleted by ``discard()``.

    Args:
        path (str | Path): The final path; its folder is created.
    """

    def __init__(self, path: str | Path):
        """Choose the temporary path next to ``path``, with the same suffix so that writers pick the same format."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix}")

    def commit(self) -> Path:
        """Move the temporary file into place and return the final path."""
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self):
        """Delete the temporary file if it exists."""
        self.tmp.unlink(missing_ok=True)


def open_writer(staged: StagedFile, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """Open a cv2.VideoWriter on the temporary file of ``staged``, with the codec of its suffix, or raise VideoError."""
    fourcc = FOURCC[staged.path.suffix.lower()]
    writer = cv2.VideoWriter(str(staged.tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise VideoError(f"{staged.path}: OpenCV cannot write {fourcc} video of {size[0]}x{size[1]} pixels")
    return writer
