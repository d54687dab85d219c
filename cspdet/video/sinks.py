"""Outputs of a video run: the annotated video, detection rows as JSON lines, and MOT rows.

Each sink is a context manager over its file. Inside, it prepares a frame's output (drawing, formatting: beside
inference, in any order) and writes the prepared outputs in frame order. A file written all at once goes to a hidden
temporary sibling of its path and is moved into place on leaving (deleted after an error, or when no frame was
written). A crash-safe output is written in place instead and stays readable at every moment: the video as fragmented
MP4 (or Matroska clusters) of at most a second each, the rows flushed frame by frame, so that after a crash (``kill
-9``, power loss aside) the file plays and holds all but the last second or two. The video is encoded by FFmpeg through
PyAV: H.264 ``yuv420p`` by default, which browsers play, with the input's timestamps and its audio stream copied.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import msgspec
import numpy as np
from ultralytics.utils import LOGGER

from cspdet.video.sources import THREADED_PIXELS, Frame, VideoError, VideoInfo, reason

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}  # output by suffix
MP4_LIKE = {"mp4", "mov"}  # an index that moves to the front (whole files) or fragments (crash-safe files)
DEFAULT_CODEC = "libx264"
# x264's cheapest preset, in one thread up to THREADED_PIXELS (its threads cost a fifth more CPU there, for no speed)
CODEC_OPTIONS = {"libx264": {"preset": "ultrafast", "crf": "23", "threads": "1"}}
PIXEL_FORMAT = "yuv420p"  # what browsers decode; chroma at half resolution, so sizes are cropped to even numbers
FALLBACK_TIME_BASE = Fraction(1, 1000)  # for encoders that refuse the source's (MPEG-4 Part 2: at most 1/65535)
FRAGMENT_S = 1.0  # crash-safe video: longest fragment (and keyframe interval), so a crash loses at most about this
CRASH_SAFE_OPTIONS = {  # per container: written in pieces that each play once on disk, and flushed as they are made
    # the index (moov) goes out with the first fragment, so that it keeps the first frame's time (an edit list)
    "mp4": {"movflags": "+frag_keyframe+delay_moov+default_base_moof", "frag_duration": str(round(FRAGMENT_S * 1e6))},
    "matroska": {"cluster_time_limit": str(round(FRAGMENT_S * 1e3))},
}


class Sink:
    """An output file written frame by frame inside ``with``: ``prepare`` each (frame, result), ``write`` the prepared
    outputs in frame order. ``prepare`` may run in several threads at once and in any order, so that the costly part
    (drawing) runs beside inference; ``write`` runs in one thread.

    On leaving: with frames written and no error, the file is finished and (unless written in place) moved into
    place; with no frame written it is deleted; after an error a staged file is deleted, an in-place one finished and
    kept (a recording keeps what it recorded). Set ``complete`` when the source was read to its end.

    Args:
        path (str | Path): The file to write; its folder is created.
        crash_safe (bool): Keep the file readable at every moment (see the subclasses).
        in_place (bool): Write at ``path`` itself rather than at a hidden temporary sibling moved into place at the end.
    """

    def __init__(self, path: str | Path, crash_safe: bool = False, in_place: bool = False):
        """Choose where to write: ``path``, or a hidden sibling with its suffix (so that writers pick the format)."""
        self.path, self.crash_safe, self.in_place = Path(path), crash_safe, in_place
        hidden = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix}")
        self.target = self.path if in_place else hidden
        self.frames, self.complete = 0, False

    def __enter__(self):
        """Open the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.open()
        except BaseException:
            self.target.unlink(missing_ok=True)
            raise
        return self

    def __exit__(self, kind, error, traceback):
        """Finish the file and put it in place, keep it, or delete it (see the class)."""
        keep, failed = self.frames > 0 and (kind is None or self.in_place), None
        try:
            self.close()
        except Exception as e:
            failed = f"{self.path}: cannot finish writing it ({e})"
        if failed and kind is None and not self.in_place:
            keep = False
        if not keep:
            self.target.unlink(missing_ok=True)
        elif not self.in_place:
            os.replace(self.target, self.path)
        if failed and kind is None:
            raise VideoError(failed)
        if failed:
            LOGGER.warning(failed)
        return False

    def open(self):
        """Create the file."""
        raise NotImplementedError

    def prepare(self, frame: Frame, result):
        """Return what ``write`` adds for one frame."""
        raise NotImplementedError

    def write(self, frame: Frame, prepared):
        """Add one frame's prepared output."""
        raise NotImplementedError

    def close(self):
        """Finish the file (again: no effect)."""
        raise NotImplementedError


class TextSink(Sink):
    """A text file of rows per frame, formatted by ``prepare``; crash-safe: flushed after every frame."""

    def open(self):
        """Open the file."""
        self.file = open(self.target, "w")

    def write(self, frame, prepared: str):
        """Write the frame's rows."""
        self.file.write(prepared)
        self.frames += 1
        if self.crash_safe:
            self.file.flush()

    def close(self):
        """Close the file."""
        self.file.close()


def _boxes(result) -> tuple[np.ndarray, list[int], list[int] | None]:
    """A result's boxes: (N, 5) x1, y1, x2, y2, score (float64), class ids and track ids (None when not tracking)."""
    data = result.boxes.data.cpu().numpy().astype(np.float64)  # x1, y1, x2, y2, (track id,) score, class
    ids = data[:, 4].astype(int).tolist() if result.boxes.is_track else None
    return np.concatenate([data[:, :4], data[:, -2:-1]], 1), data[:, -1].astype(int).tolist(), ids


class JsonLinesSink(TextSink):
    """One JSON line per frame: ``{"frame": i, "t": seconds, "boxes": [[x1, y1, x2, y2, score, class_id], ...]}`` in
    source pixels (to 0.01 px, scores to 1e-5), plus ``"ids"`` (track ids) when tracking, and ``"gap": {"start": s,
    "length": s}`` on the first frame after a live source was lost and reopened.
    """

    def prepare(self, frame, result) -> str:
        """The frame's line."""
        boxes, classes, ids = _boxes(result)
        rounded = np.concatenate([boxes[:, :4].round(2), boxes[:, 4:].round(5)], 1).tolist()
        row = {"frame": frame.index, "t": round(frame.time, 6), "boxes": [[*b, c] for b, c in zip(rounded, classes)]}
        if ids:
            row["ids"] = ids
        if frame.gap:
            row["gap"] = {"start": round(frame.gap.start, 6), "length": round(frame.gap.length, 6)}
        return msgspec.json.encode(row).decode() + "\n"  # compact; several times faster than json.dumps


class MotSink(TextSink):
    """MOTChallenge rows ``frame,id,left,top,width,height,score,-1,-1,-1`` (frames from 1) of tracked boxes."""

    def prepare(self, frame, result) -> str:
        """A row per tracked box."""
        boxes, _, ids = _boxes(result)
        return "".join(
            f"{frame.index + 1},{i},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.5f},-1,-1,-1\n"
            for (x1, y1, x2, y2, s), i in zip(boxes.tolist(), ids or [])
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
        info (VideoInfo): The source's size, frame rate and time base.
        draw (Callable): Result -> its BGR frame with the boxes drawn, as ``yolo predict`` draws them.
        codec (str): FFmpeg video encoder (``libx264``, ``libx265``, ``libvpx-vp9``, ``mpeg4``, ...).
        audio (av.audio.stream.AudioStream, optional): The source's audio stream, copied packet by packet.
        crash_safe (bool): Write fragmented MP4 (``.mov`` alike) or Matroska clusters of at most FRAGMENT_S, flushed
            as they are made, so the file plays at every moment; else the whole file at once, with the index first
            (``+faststart``) for MP4.
        in_place (bool): See Sink.
        name (str): The source, for messages.
    """

    def __init__(self, path, info: VideoInfo, draw: Callable, codec=DEFAULT_CODEC, audio=None, crash_safe=False,
                 in_place=False, name: str = "the source"):  # fmt: skip
        """Check the output; the container opens on entering."""
        super().__init__(check_output(path, codec), crash_safe, in_place)
        self.info, self.draw, self.codec, self.last_pts = info, draw, codec, None
        self.pending = collections.deque()  # audio packets, muxed when the video reaches their time
        self.audio_template = audio
        if audio and audio.codec_context.name not in av.open(os.devnull, "w", format=self._format).supported_codecs:
            LOGGER.warning(
                f"{self.path}: {self.path.suffix} cannot hold the '{audio.codec_context.name}' audio of {name}, so the "
                "video has no sound (.mkv holds any audio)"
            )
            self.audio_template = None

    @property
    def _format(self) -> str:
        """The FFmpeg container format of the output suffix."""
        return CONTAINERS[self.path.suffix.lower()]

    def open(self):
        """Open the container with the video stream (and a copy of the audio stream) and write the header, in the
        source's time base or, for an encoder that refuses it, in milliseconds."""
        for time_base in (self.info.time_base, FALLBACK_TIME_BASE):  # some encoders (mpeg4) refuse fine time bases
            try:
                self._open(time_base)
                break
            except av.FFmpegError as e:
                self.container.close()
                error = e
        else:
            size = "x".join(map(str, self.info.size))
            raise VideoError(f"{self.path}: FFmpeg cannot write {self.codec} video of {size} ({reason(error)})")
        self.scale = self.info.time_base / time_base  # source pts -> output pts

    def _open(self, time_base: Fraction):
        """Open the file for ``time_base`` timestamps and write the header."""
        fmt = self._format
        if self.crash_safe:
            options = {**CRASH_SAFE_OPTIONS.get("mp4" if fmt in MP4_LIKE else "matroska", {}), "flush_packets": "1"}
        else:
            options = {"movflags": "+faststart"} if fmt in MP4_LIKE else {}
        if fmt in MP4_LIKE:  # the first frame's time, in the index's edit list, exact (not in milliseconds)
            options["movie_timescale"] = str(time_base.denominator)
        self.container = av.open(str(self.target), "w", format=self._format, options=options)
        options = dict(CODEC_OPTIONS.get(self.codec, {}))
        if self.info.width * self.info.height > THREADED_PIXELS:
            options.pop("threads", None)  # large frames: the encoder's own threads, so that encoding keeps up
        self.video = self.container.add_stream(self.codec, rate=self.info.fps, options=options)
        if self.crash_safe:  # a keyframe at least every fragment, so each fragment decodes on its own
            self.video.codec_context.gop_size = max(1, math.ceil(self.info.fps * FRAGMENT_S))
        formats = [f.name for f in self.video.codec.video_formats or []]
        self.video.pix_fmt = PIXEL_FORMAT if PIXEL_FORMAT in formats or not formats else formats[0]
        self.video.width, self.video.height = (s - s % 2 for s in self.info.size)
        self.video.codec_context.time_base = self.video.time_base = self.time_base = time_base
        self.audio = self.container.add_stream_from_template(self.audio_template) if self.audio_template else None
        self.container.start_encoding()

    def add_audio(self, packet: av.Packet):
        """Queue a packet of the source's audio (from the reader thread); it is muxed when the video reaches it."""
        if self.audio_template is not None:
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
        self.frames += 1

    def close(self):
        """Flush the encoder and write the index; the rest of the audio too when the source was read to its end."""
        try:
            if self.complete:
                self._mux_audio(None)
            self.container.mux(self.video.encode(None))
        finally:
            self.container.close()


def _seconds(packet: av.Packet) -> float:
    """A packet's presentation time in seconds."""
    return float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
