"""Outputs of a video run: the annotated video, detection rows as JSON lines, and MOT rows.

Each sink prepares a frame's output (drawing, formatting: beside inference, in any order) and writes the prepared
outputs in frame order into a hidden temporary sibling of its path; ``close`` finalises the file (a video
stays playable after Ctrl-C) and ``commit`` moves it into place, or ``discard`` deletes it. The video is encoded by
FFmpeg through PyAV: H.264 ``yuv420p`` in an MP4 with its index first (``+faststart``) by default, which browsers
play, with the input's timestamps and its audio stream copied.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from ultralytics.utils import LOGGER

from cspdet.video.sources import Frame, Source, VideoError, reason

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}  # output by suffix
FASTSTART = {"mp4", "mov"}  # containers whose index moves to the front: playback starts before the download ends
DEFAULT_CODEC = "libx264"
CODEC_OPTIONS = {"libx264": {"preset": "ultrafast", "crf": "23"}}  # 1.5 ms/frame at 640x360: as cheap as MJPG
PIXEL_FORMAT = "yuv420p"  # what browsers decode; chroma at half resolution, so sizes are cropped to even numbers
FALLBACK_TIME_BASE = Fraction(1, 1000)  # for encoders that refuse the source's (MPEG-4 Part 2: at most 1/65535)


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


class Sink:
    """An output written frame by frame: ``prepare`` each (frame, result), ``write`` the prepared outputs in frame
    order, ``close``, then ``commit`` or ``discard``. ``prepare`` may run in several threads at once and in any order,
    so that the costly part (drawing) runs beside inference; ``write`` runs in one thread.

    Args:
        path (str | Path): The file to write.
    """

    def __init__(self, path: str | Path):
        """Stage the file."""
        self.staged = StagedFile(path)

    @property
    def path(self) -> Path:
        """The final path."""
        return self.staged.path

    def prepare(self, frame: Frame, result):
        """Return what ``write`` adds for one frame."""
        raise NotImplementedError

    def write(self, frame: Frame, prepared):
        """Add one frame's prepared output."""
        raise NotImplementedError

    def close(self, complete: bool = True):
        """Finish the temporary file; ``complete`` is False when the run stopped before the source ended."""
        raise NotImplementedError

    def commit(self) -> Path:
        """Move the finished file into place and return its path."""
        return self.staged.commit()

    def discard(self):
        """Close without caring for errors and delete the temporary file."""
        with contextlib.suppress(Exception):
            self.close(complete=False)
        self.staged.discard()


class TextSink(Sink):
    """A text file of rows per frame, formatted by ``prepare``."""

    def __init__(self, path: str | Path):
        """Open the temporary file."""
        super().__init__(path)
        self.file = open(self.staged.tmp, "w")

    def write(self, frame, prepared: str):
        """Write the frame's rows."""
        self.file.write(prepared)

    def close(self, complete=True):
        """Close the file."""
        self.file.close()


def _boxes(result) -> tuple[list, list, list, list | None]:
    """A result's boxes as lists: xyxy, scores, class ids and track ids (None when not tracking)."""
    boxes = result.boxes
    ids = boxes.id.int().tolist() if boxes.is_track else None
    return boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.int().tolist(), ids


class JsonLinesSink(TextSink):
    """One JSON line per frame: ``{"frame": i, "t": seconds, "boxes": [[x1, y1, x2, y2, score, class_id], ...]}`` in
    source pixels, plus ``"ids"`` (track ids) when tracking.
    """

    def prepare(self, frame, result) -> str:
        """The frame's line."""
        xyxy, scores, classes, ids = _boxes(result)
        boxes = [[*(round(v, 2) for v in b), round(s, 5), c] for b, s, c in zip(xyxy, scores, classes)]
        row = {"frame": frame.index, "t": round(frame.time, 6), "boxes": boxes, **({"ids": ids} if ids else {})}
        return json.dumps(row) + "\n"


class MotSink(TextSink):
    """MOTChallenge rows ``frame,id,left,top,width,height,score,-1,-1,-1`` (frames from 1) of tracked boxes."""

    def prepare(self, frame, result) -> str:
        """A row per tracked box."""
        xyxy, scores, _, ids = _boxes(result)
        return "".join(
            f"{frame.index + 1},{i},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.5f},-1,-1,-1\n"
            for (x1, y1, x2, y2), s, i in zip(xyxy, scores, ids or [])
        )


def check_output(path: str | Path, codec: str = DEFAULT_CODEC) -> Path:
    """Return ``path`` as a Path if its suffix names a container that holds ``codec`` video, else raise VideoError."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINERS:
        raise VideoError(f"{path}: unsupported output video suffix '{path.suffix}', use one of {', '.join(CONTAINERS)}")
    try:
        encoder = av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        raise VideoError(f"{path}: FFmpeg has no encoder '{codec}' (--codec)") from None
    if encoder.type != "video":
        raise VideoError(f"{path}: '{codec}' encodes {encoder.type}, not video (--codec)")
    with av.open(os.devnull, "w", format=CONTAINERS[path.suffix.lower()]) as container:
        try:
            container.add_stream(codec)
        except ValueError as e:  # the container cannot hold this codec
            raise VideoError(f"{path}: {e} (--codec)") from None
    return path


class VideoSink(Sink):
    """The annotated video: each result drawn, encoded at its frame's timestamp, with the source's audio copied.

    Args:
        path (str | Path): ``.mp4``, ``.m4v``, ``.mov``, ``.mkv`` or ``.webm``.
        source (Source): The opened source: its size, frame rate, time base and audio stream.
        draw (Callable): Result -> BGR image, as ``yolo predict`` draws it.
        codec (str): FFmpeg video encoder (``libx264``, ``libx265``, ``libvpx-vp9``, ``mpeg4``, ...).
    """

    def __init__(self, path: str | Path, source: Source, draw: Callable, codec: str = DEFAULT_CODEC):
        """Open the container and write its header, so that a codec the container refuses fails before any work."""
        super().__init__(check_output(path, codec))
        self.draw, self.last_pts = draw, None
        self.pending = collections.deque()  # audio packets, muxed when the video reaches their time
        audio = source.audio
        if audio and audio.codec_context.name not in av.open(os.devnull, "w", format=self._format).supported_codecs:
            LOGGER.warning(
                f"{self.path}: {self.path.suffix} cannot hold the '{audio.codec_context.name}' audio of "
                f"{source.name}, so the video has no sound (.mkv holds any audio)"
            )
            audio = None
        for time_base in (source.time_base, FALLBACK_TIME_BASE):  # some encoders (mpeg4) refuse fine time bases
            try:
                self._open(source, codec, time_base, audio)
                break
            except av.FFmpegError as e:
                self.container.close()
                error = e
        else:
            self.staged.discard()
            raise VideoError(f"{self.path}: FFmpeg cannot write {codec} video of {source.size} ({reason(error)})")
        self.scale = source.time_base / time_base  # source pts -> output pts

    @property
    def _format(self) -> str:
        """The FFmpeg container format of the output suffix."""
        return CONTAINERS[self.path.suffix.lower()]

    def _open(self, source: Source, codec: str, time_base: Fraction, audio):
        """Open the temporary file with the video stream (and a copy of the ``audio`` stream) and write the header."""
        options = {"movflags": "+faststart"} if self._format in FASTSTART else {}
        self.container = av.open(str(self.staged.tmp), "w", format=self._format, options=options)
        self.video = self.container.add_stream(codec, rate=source.rate, options=CODEC_OPTIONS.get(codec, {}))
        formats = [f.name for f in self.video.codec.video_formats or []]
        self.video.pix_fmt = PIXEL_FORMAT if PIXEL_FORMAT in formats or not formats else formats[0]
        self.video.width, self.video.height = (s - s % 2 for s in source.size)
        self.video.codec_context.time_base = self.video.time_base = self.time_base = time_base
        self.audio = self.container.add_stream_from_template(audio) if audio else None
        self.container.start_encoding()

    def add_audio(self, packet: av.Packet):
        """Queue a packet of the source's audio (from the reader thread); it is muxed when the video reaches it."""
        if self.audio is not None:
            self.pending.append(packet)

    def _mux_audio(self, until: float | None):
        """Mux the queued audio packets that start by ``until`` seconds (all of them when None)."""
        while self.pending and (until is None or _seconds(self.pending[0]) <= until):
            packet = self.pending.popleft()
            packet.stream = self.audio
            self.container.mux(packet)

    def prepare(self, frame, result) -> np.ndarray:
        """``result`` drawn, cropped to the output size and, for ``yuv420p``, converted to its planes by OpenCV
        (half the cost of FFmpeg's conversion)."""
        image = self.draw(result)[: self.video.height, : self.video.width]
        return cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420) if self.video.pix_fmt == PIXEL_FORMAT else image

    def write(self, frame, prepared):
        """Encode the prepared picture with the frame's timestamp."""
        self._mux_audio(frame.time)
        yuv = self.video.pix_fmt == PIXEL_FORMAT
        picture = av.VideoFrame.from_ndarray(prepared, format=PIXEL_FORMAT if yuv else "bgr24")
        pts = round(frame.pts * self.scale)
        # Timestamps must increase: a source that repeats one (rare, broken streams) gets the next tick.
        picture.pts = self.last_pts = pts if self.last_pts is None else max(pts, self.last_pts + 1)
        picture.time_base = self.time_base
        self.container.mux(self.video.encode(picture))

    def close(self, complete=True):
        """Flush the encoder and write the index; the rest of the audio too when the source was read to its end."""
        if complete:
            self._mux_audio(None)
        try:
            self.container.mux(self.video.encode(None))
        finally:
            self.container.close()


def _seconds(packet: av.Packet) -> float:
    """A packet's presentation time in seconds."""
    return float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
