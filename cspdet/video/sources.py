"""Video sources: files, folders, webcams and stream URLs, decoded into frames that carry their presentation time.

Files and stream URLs are decoded by FFmpeg through PyAV (threaded decoding); webcams, which FFmpeg names differently
on each platform, are read by index through OpenCV. Every frame carries its timestamp: the source's own for files and
streams (so a variable frame rate survives), the capture clock for webcams.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import cv2
import numpy as np
from ultralytics.data.utils import VID_FORMATS

from cspdet.errors import CspdetError

OPEN_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 10.0  # a stream that sends nothing for this long has ended
CLOCK_TIME_BASE = Fraction(1, 1000)  # milliseconds: webcam frames (the capture clock), streams without a time base
LOCAL_SCHEMES = ("file",)  # URL schemes read as files: not live unless asked


class VideoError(CspdetError):
    """A source or output that cannot be used; the message names it and says why."""


@dataclass(eq=False)
class Frame:
    """A decoded frame and when it was shown and captured.

    Args:
        index (int): Decoded frame number in the source, from 0 (live sources skip the dropped ones' numbers).
        pts (int): Presentation timestamp, in the source's ``time_base``.
        time (float): Presentation time in seconds.
        captured (float): ``time.monotonic()`` when it left the decoder or camera: the start of its latency.
        picture (av.VideoFrame | np.ndarray): The decoded picture, converted to BGR on first use of ``image``.
        seq (int): Order in which inference took it (set by the engine).
    """

    index: int
    pts: int
    time: float
    captured: float
    picture: av.VideoFrame | np.ndarray = field(repr=False)
    seq: int = -1

    @cached_property
    def image(self) -> np.ndarray:
        """The picture as a BGR array (H, W, 3), as ultralytics' loaders give it."""
        picture = self.picture
        return picture if isinstance(picture, np.ndarray) else picture.to_ndarray(format="bgr24")


class Source:
    """An opened source whose first frame decoded: its geometry, timing and announced length.

    Args:
        name (str): The source as given (path, webcam index or URL).
        live (bool): Whether frames that arrive while inference is busy are dropped (keeping the latest).
        size (tuple[int, int]): Frame (width, height).
        rate (Fraction): Nominal frames per second (the average for a variable frame rate).
        time_base (Fraction): Unit of the frames' ``pts``.
        frames (int): Frames the container announces, 0 when unknown (streams, webcams).
        audio (av.audio.stream.AudioStream, optional): The audio stream, which outputs copy.
    """

    def __init__(self, name, live, size, rate, time_base, frames=0, audio=None):
        """Record what the opened source is; ``busy`` counts the seconds spent decoding."""
        self.name, self.live, self.size, self.rate, self.time_base = name, live, size, rate, time_base
        self.frames, self.audio, self.busy = frames, audio, 0.0

    def read(self, on_audio: Callable | None = None) -> Iterator[Frame]:
        """Yield the frames until the source ends, passing each audio packet to ``on_audio``."""
        raise NotImplementedError

    def close(self):
        """Release the file, stream or camera (again: no effect). Audio packets must not be used after this."""
        raise NotImplementedError


class FFmpegSource(Source):
    """A video file or stream URL decoded by FFmpeg (PyAV), opened and checked on construction.

    Args:
        name (str): A path or URL.
        live (bool): See Source. A live file is read at its own pace, as if it came from a camera.
    """

    def __init__(self, name: str, live: bool):
        """Open the container, pick its first video (and audio) stream and decode the first frame, or raise."""
        url = "://" in name and name.split("://")[0] not in LOCAL_SCHEMES
        try:
            self.container = av.open(name, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S) if url else None)
        except av.FFmpegError as e:
            raise VideoError(f"{name}: FFmpeg cannot open it as a video ({reason(e)})") from None
        try:
            if not self.container.streams.video:
                raise VideoError(f"{name}: no video stream")
            stream = self.container.streams.video[0]
            if stream.codec_context is None:
                raise VideoError(f"{name}: FFmpeg has no decoder for its video codec")
            stream.thread_type = "AUTO"  # FFmpeg's frame and slice threads
            audio = self.container.streams.audio[0] if self.container.streams.audio else None
            rate = stream.average_rate or stream.guessed_rate or Fraction(30)
            time_base = stream.time_base or CLOCK_TIME_BASE
            super().__init__(name, live, (stream.width, stream.height), rate, time_base, stream.frames, audio)
            self.pace, self.corrupt, self.early_audio, self.on_audio = live and not url, 0, [], None
            self._decoded = self._decode(stream)
            self.first = next(self._decoded, None)
            if self.first is None:
                raise VideoError(
                    f"{name}: none of its {self.frames} frames could be decoded ({self.corrupt} corrupt packets)"
                    if self.frames
                    else f"{name}: the video has no frames"
                )
        except BaseException:
            self.container.close()
            raise

    def close(self):
        """Close the container."""
        self.container.close()

    def _decode(self, stream) -> Iterator[Frame]:
        """Demux and decode: yield video frames, keep audio packets for ``read``, skip packets that fail to decode."""
        streams = [stream, self.audio] if self.audio else [stream]
        index, rate, time_base = 0, self.rate, self.time_base
        for packet in self.container.demux(streams):
            if packet.stream.type == "audio":
                if packet.dts is not None:  # the demuxer's final empty packet has none
                    self._audio(packet)
                continue
            start = time.perf_counter()
            try:
                pictures = packet.decode()
            except av.FFmpegError:
                self.corrupt += 1
                continue
            for picture in pictures:
                pts = picture.pts if picture.pts is not None else round(index / rate / time_base)
                frame = Frame(index, pts, float(pts * time_base), time.monotonic(), picture)
                if not self.live:
                    frame.image  # noqa: B018  (convert here, in the decoder thread; live frames convert if kept)
                self.busy += time.perf_counter() - start
                yield frame
                index, start = index + 1, time.perf_counter()

    def _audio(self, packet):
        """Hand an audio packet on, or keep it until ``read`` says where (packets before the first frame)."""
        (self.on_audio or self.early_audio.append)(packet)

    def read(self, on_audio=None):
        """Yield the frames (the first one, decoded on opening, first), paced at their timestamps for a live file."""
        self.on_audio = on_audio
        for packet in self.early_audio if on_audio else []:
            on_audio(packet)
        start, first = time.monotonic(), self.first.time
        for frame in itertools.chain([self.first], self._decoded):
            if self.pace:
                time.sleep(max(0.0, start + frame.time - first - time.monotonic()))
                frame.captured = time.monotonic()
            yield frame


class CameraSource(Source):
    """A webcam by index, read through OpenCV; frames are stamped with the capture clock.

    Args:
        index (int): The camera index (0 is the first camera).
        live (bool): See Source.
    """

    def __init__(self, index: int, live: bool):
        """Open the camera and read its first frame, or raise."""
        self.capture = cv2.VideoCapture(index)
        ok, image = self.capture.read() if self.capture.isOpened() else (False, None)
        if not ok:
            self.capture.release()
            raise VideoError(f"{index}: cannot open this camera")
        self.start = time.monotonic()
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        rate = Fraction(fps).limit_denominator(1001) if 0 < fps < 1000 else Fraction(30)
        super().__init__(str(index), live, (image.shape[1], image.shape[0]), rate, CLOCK_TIME_BASE)
        self.first = image

    def read(self, on_audio=None):
        """Yield frames until the camera stops delivering them."""
        image, index = self.first, 0
        while image is not None:
            captured = time.monotonic()
            pts = round((captured - self.start) / CLOCK_TIME_BASE)
            yield Frame(index, pts, float(pts * CLOCK_TIME_BASE), captured, image)
            start = time.perf_counter()
            ok, image = self.capture.read()
            self.busy += time.perf_counter() - start
            image, index = image if ok else None, index + 1

    def close(self):
        """Release the camera."""
        self.capture.release()


def reason(error: av.FFmpegError) -> str:
    """FFmpeg's words for an error, without the file name PyAV appends."""
    return error.strerror or type(error).__name__


def is_live(source: str | int) -> bool:
    """Whether ``source`` is live by default: a webcam index or a stream URL (not ``file://``)."""
    text = str(source)
    return text.isdigit() or ("://" in text and text.split("://")[0] not in LOCAL_SCHEMES)


def open_source(source: str | int | Path, live: bool | None = None) -> Source:
    """Open a video file, webcam index or stream URL and decode its first frame, or raise a VideoError saying why.

    Args:
        source (str | int | Path): A video file, a webcam index or a stream URL.
        live (bool, optional): Drop the frames that arrive while inference is busy; default: webcams and streams.

    Examples:
        >>> source = open_source("video.mp4")
        >>> source.size, source.rate, source.frames
        ((640, 360), Fraction(179, 6), 1189)
    """
    text = str(source)
    live = is_live(text) if live is None else live
    if text.isdigit():
        return CameraSource(int(text), live)
    if "://" not in text and not Path(text).is_file():
        raise VideoError(f"{text}: no such file")
    return FFmpegSource(text, live)


def find_sources(source: str | int | Path) -> list[str]:
    """Expand a source into the videos it names: a video file, each video of a folder, a webcam index or a URL."""
    text = str(source)
    if text.isdigit() or "://" in text:
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
