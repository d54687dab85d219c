"""Video sources: files, folders, webcams and stream URLs, decoded into frames that carry their presentation time.

Files and stream URLs are decoded by FFmpeg through PyAV; webcams, which FFmpeg names differently on each platform, are
read by index through OpenCV. Every frame carries its timestamp: the source's own for files and streams (so a variable
frame rate survives), the capture clock for webcams. A live source that is lost (a stream that drops its client or
stops sending, a webcam unplugged) is reopened with backoff, and its frames go on in one timeline in which the real
time without frames stays a gap; a file that breaks off (truncated, corrupt) ends where it breaks.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter
from ultralytics.data.utils import VID_FORMATS
from ultralytics.utils import LOGGER

from cspdet.errors import CspdetError

OPEN_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 10.0  # a stream that sends nothing for this long is lost
CLOCK_TIME_BASE = Fraction(1, 1000)  # milliseconds: webcam frames (the capture clock), streams without a time base
LOCAL_SCHEMES = ("file",)  # URL schemes read as files: not live unless asked
THREADED_PIXELS = 1280 * 720  # larger frames are decoded (and encoded) in FFmpeg's threads; smaller ones in one:
# threads add no speed on a busy CPU there, a frame of latency each, and CPU that the stage clocks do not see
FIRST_RETRY_S, RETRY_CAP_S = 0.5, 8.0  # reopening a lost source: the first wait, doubled after each try up to the cap
_CONVERTER = threading.local()  # one FFmpeg colour converter per thread, kept from frame to frame


class VideoError(CspdetError):
    """A source or output that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, for the outputs that follow it: frame size, nominal rate, time base and announced length.

    Args:
        width (int): Frame width in pixels.
        height (int): Frame height in pixels.
        fps (Fraction): Nominal frames per second (the average for a variable frame rate).
        time_base (Fraction): Unit of the frames' ``pts``.
        frames (int): Frames the container announces (or its duration implies), 0 when unknown (streams, webcams).
    """

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height


@dataclass(frozen=True)
class Gap:
    """Time without frames in a live source's timeline: from the last frame before a loss to the first one after.

    Args:
        start (float): Time of the last frame before the loss, in seconds.
        length (float): Seconds from that frame to the next one: the real time the source was away.
    """

    start: float
    length: float


@dataclass(eq=False)
class Frame:
    """A decoded frame and when it was shown and captured.

    Args:
        index (int): Decoded frame number in the source, from 0 (live sources skip the dropped ones' numbers).
        pts (int): Presentation timestamp, in the source's ``info.time_base``.
        time (float): Presentation time in seconds.
        captured (float): ``time.monotonic()`` when it left the decoder or camera: the start of its latency.
        picture (av.VideoFrame | np.ndarray): The decoded picture, converted to BGR on first use of ``image``.
        gap (Gap, optional): The gap that this frame ends (the first frame after a reconnection).
        lane (int): Which of a run's sources it comes from (set by the engine).
        seq (int): Order in which inference took it among its source's frames (set by the engine).
    """

    index: int
    pts: int
    time: float
    captured: float
    picture: av.VideoFrame | np.ndarray = field(repr=False)
    gap: Gap | None = None
    lane: int = 0
    seq: int = -1

    @cached_property
    def image(self) -> np.ndarray:
        """The picture as a BGR array (H, W, 3), converted by FFmpeg as OpenCV's capture converts it."""
        picture = self.picture
        if isinstance(picture, np.ndarray):
            return picture
        if (converter := getattr(_CONVERTER, "converter", None)) is None:
            converter = _CONVERTER.converter = VideoReformatter()  # one per frame would set FFmpeg's scaler up anew
        return converter.reformat(picture, format="bgr24").to_ndarray()


class Source:
    """An opened source whose first frame decoded; ``read`` yields its frames, reopening a live source when lost.

    Subclasses open the source (``_connect``), yield one connection's frames (``_frames``, stamped by ``_stamp``) and
    close it (``_release``); ``info`` and ``_first`` (the connection made on construction) are theirs to set.

    Args:
        name (str): The source as given (path, webcam index or URL).
        live (bool): Whether frames that arrive while inference is busy are dropped (keeping the latest).
        reconnect (float): Seconds to keep trying to reopen the source once it is lost (``math.inf``: forever; 0: never,
            the source then ends at its first loss).
    """

    info: VideoInfo
    audio = None  # the audio stream that outputs copy (FFmpeg sources)
    from_zero = False  # whether the timeline starts at 0 (live streams, whose own clocks start anywhere)

    def __init__(self, name: str, live: bool, reconnect: float = 0.0):
        """Nothing read yet; ``busy`` counts the CPU seconds spent reading and decoding, ``decoded`` the frames read,
        ``undecodable`` the packets the decoder refused; ``why`` says why the last connection ended, if it failed."""
        self.name, self.live, self.reconnect = name, live, reconnect
        self.busy, self.undecodable, self.gaps, self.lost, self.why = 0.0, 0, [], None, ""
        self.decoded, self.stopping, self._first, self._last, self._offset = 0, threading.Event(), None, None, 0

    def stop(self):
        """End ``read`` after the frame it is at; a wait to reopen the source ends at once."""
        self.stopping.set()

    def read(self, on_audio: Callable | None = None) -> Iterator[Frame]:
        """Yield the frames until the source ends, stays lost or is stopped, passing audio packets to ``on_audio``.

        The frames of a reopened source continue the timeline: the first comes as long after the last frame before the
        loss as it did in real time (``gaps``, and that frame's ``gap``); the ones after it keep their own spacing.
        """
        connection, self._first = self._first, None
        try:
            while connection is not None and not self.stopping.is_set():
                yield from self._frames(connection, on_audio)
                self._release(connection)
                connection = None
                if self.reconnect > 0 and not self.stopping.is_set():
                    connection = self._reopen()
        finally:
            if connection is not None:
                self._release(connection)

    def _stamp(self, frame: Frame, first: bool) -> Frame:
        """Number ``frame`` and put it on the source's timeline (a live stream's starts at 0 with its first frame);
        ``first`` of a connection after a loss: after the last frame by the real time between their captures."""
        if self._last is None and self.from_zero:
            self._offset = -frame.pts
        elif first and self._last is not None:
            last = self._last
            self._offset = last.pts + max(1, round((frame.captured - last.captured) / self.info.time_base)) - frame.pts
            frame.gap = Gap(last.time, float((frame.pts + self._offset - last.pts) * self.info.time_base))
            self.gaps.append(frame.gap)
        frame.index, frame.pts = self.decoded, frame.pts + self._offset
        frame.time = float(frame.pts * self.info.time_base)
        self.decoded, self._last = self.decoded + 1, frame
        return frame

    def _reopen(self):
        """A new connection after a loss, trying with backoff for ``reconnect`` seconds; None when it stays lost."""
        lost, wait = time.monotonic(), FIRST_RETRY_S
        at = f" at {self._last.time:.2f} s" if self._last else ""
        LOGGER.warning(f"{self.name}: lost{at}{self.why}, reopening")
        self.why = ""
        while not self.stopping.wait(wait):
            try:
                connection = self._connect()
            except VideoError as e:
                waited = time.monotonic() - lost
                if waited + wait > self.reconnect:
                    self.lost = self._last.time if self._last else 0.0
                    LOGGER.warning(f"{self.name}: still lost after {waited:.0f} s, giving up ({e})")
                    return None
                wait = min(2 * wait, RETRY_CAP_S)
                continue
            LOGGER.info(f"{self.name}: back after {time.monotonic() - lost:.1f} s")
            return connection
        return None

    def _connect(self):
        """Open the source again and decode its first frame, or raise VideoError."""
        raise NotImplementedError

    def _frames(self, connection, on_audio: Callable | None) -> Iterator[Frame]:
        """One connection's frames, stamped, until it ends or fails."""
        raise NotImplementedError

    def _release(self, connection):
        """Close one connection."""
        raise NotImplementedError

    def close(self):
        """Release the source if ``read`` never ran (``read`` releases what it opens)."""
        self.stop()
        if self._first is not None:
            self._release(self._first)
            self._first = None


@dataclass(eq=False)
class _Connection:
    """One opening of an FFmpeg source: its container, streams, first frame, the decoder after it, audio before it."""

    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    audio: av.audio.stream.AudioStream | None
    first: Frame
    rest: Iterator[Frame]
    early_audio: list
    on_audio: Callable | None = None  # where the decoder sends audio packets, once the first frame is placed


class FFmpegSource(Source):
    """A video file or stream URL decoded by FFmpeg (PyAV), opened and checked on construction.

    Args:
        name (str): A path or URL.
        live (bool): See Source. A live file is read at its own pace, as if it came from a camera.
        reconnect (float): See Source; only stream URLs are reopened (a file that ends has ended).
    """

    def __init__(self, name: str, live: bool, reconnect: float = 0.0):
        """Open the container, pick its first video (and audio) stream and decode the first frame, or raise."""
        url = "://" in name and name.split("://")[0] not in LOCAL_SCHEMES
        super().__init__(name, live, reconnect if url else 0.0)
        self.url, self.pace, self.from_zero = url, live and not url, url and live
        self._first = connection = self._connect()
        stream = connection.stream
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        frames = stream.frames or _frames_in_duration(connection.container, stream, rate)
        self.info = VideoInfo(stream.width, stream.height, rate, stream.time_base or CLOCK_TIME_BASE, frames)
        self.audio = connection.audio

    def _connect(self) -> _Connection:
        """Open the container and decode its first frame, or raise VideoError saying why."""
        name = self.name
        try:
            container = av.open(name, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S) if self.url else None)
        except av.FFmpegError as e:
            raise VideoError(f"{name}: FFmpeg cannot open it as a video ({reason(e)})") from None
        try:
            if not container.streams.video:
                raise VideoError(f"{name}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise VideoError(f"{name}: FFmpeg has no decoder for its video codec")
            if stream.width * stream.height > THREADED_PIXELS:
                stream.thread_type = "AUTO"  # FFmpeg's frame and slice threads
            else:
                stream.codec_context.thread_count = 1
            audio = container.streams.audio[0] if container.streams.audio else None
            corrupt = self.undecodable
            connection = _Connection(container, stream, audio, None, None, [])
            connection.rest = self._decode(connection)
            connection.first = next(connection.rest, None)
            if connection.first is None:
                raise VideoError(
                    f"{name}: none of its {stream.frames} frames could be decoded ({self.undecodable - corrupt} "
                    "corrupt packets)"
                    if stream.frames
                    else f"{name}: the video has no frames"
                )
        except BaseException:
            container.close()
            raise
        return connection

    def _release(self, connection: _Connection):
        """Close the connection's container."""
        connection.container.close()

    def _decode(self, connection: _Connection) -> Iterator[Frame]:
        """Demux and decode one connection: yield its video frames (pts in the first connection's time base), hand
        audio packets on (keeping those before the first frame), count and skip packets that fail to decode, and end
        where demuxing fails (a file cut short, a stream lost)."""
        stream, audio = connection.stream, connection.audio
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        own = stream.time_base or CLOCK_TIME_BASE
        target = getattr(self, "info", None)
        scale = own / target.time_base if target else Fraction(1)  # a reopened stream may count time differently
        packets = connection.container.demux([stream, audio] if audio else [stream])
        index, start = 0, time.thread_time()
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as e:
                self.busy += time.thread_time() - start
                if self.url:
                    self.why = f" ({reason(e)})"  # said when the stream is reopened
                else:
                    LOGGER.warning(f"{self.name}: decoding stops after {index} frames ({reason(e)})")
                return
            if packet.stream.type == "audio":
                if packet.dts is not None:  # the demuxer's final empty packet has none
                    (connection.on_audio or connection.early_audio.append)(packet)
                continue
            try:
                pictures = packet.decode()
            except av.FFmpegError:
                self.undecodable += 1
                continue
            for picture in pictures:
                pts = picture.pts if picture.pts is not None else round(index / rate / own)
                frame = Frame(index, round(pts * scale), 0.0, time.monotonic(), picture)
                if not self.live:
                    frame.image  # noqa: B018  (convert here, in the reader thread; live frames convert if kept)
                self.busy += time.thread_time() - start
                yield frame
                index, start = index + 1, time.thread_time()

    def _frames(self, connection: _Connection, on_audio=None) -> Iterator[Frame]:
        """The connection's frames (the one decoded on opening first), paced at their timestamps for a live file; its
        audio packets moved along the timeline as its frames are."""
        start, origin = time.monotonic(), connection.first.pts
        for i, frame in enumerate(itertools.chain([connection.first], connection.rest)):
            if self.pace:
                time.sleep(max(0.0, start + float((frame.pts - origin) * self.info.time_base) - time.monotonic()))
                frame.captured = time.monotonic()
            raw = frame.pts
            self._stamp(frame, first=i == 0)
            if i == 0:  # the connection's place on the timeline is known: its audio goes on to the outputs
                connection.on_audio = _audio_route(on_audio, float((frame.pts - raw) * self.info.time_base))
                for packet in connection.early_audio:
                    connection.on_audio(packet)
                connection.early_audio.clear()
            yield frame


class CameraSource(Source):
    """A webcam by index, read through OpenCV; frames are stamped with the capture clock.

    Args:
        index (int): The camera index (0 is the first camera).
        live (bool): See Source.
        reconnect (float): See Source: a camera that stops delivering frames is opened again.
    """

    def __init__(self, index: int, live: bool, reconnect: float = 0.0):
        """Open the camera and read its first frame, or raise."""
        super().__init__(str(index), live, reconnect)
        self.index, self.start = index, time.monotonic()
        self._first = capture, image = self._connect()
        fps = capture.get(cv2.CAP_PROP_FPS)
        rate = Fraction(fps).limit_denominator(1001) if 0 < fps < 1000 else Fraction(30)
        self.info = VideoInfo(image.shape[1], image.shape[0], rate, CLOCK_TIME_BASE)

    def _connect(self) -> tuple[cv2.VideoCapture, np.ndarray]:
        """Open the camera and read a frame, or raise VideoError."""
        capture = cv2.VideoCapture(self.index)
        ok, image = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise VideoError(f"{self.index}: cannot open this camera")
        return capture, image

    def _frames(self, connection, on_audio=None) -> Iterator[Frame]:
        """Frames until the camera stops delivering them."""
        capture, image = connection
        first = True
        while image is not None:
            captured = time.monotonic()
            pts = round((captured - self.start) / CLOCK_TIME_BASE)
            yield self._stamp(Frame(0, pts, 0.0, captured, image), first)
            start = time.thread_time()
            ok, image = capture.read()
            self.busy += time.thread_time() - start
            image, first = image if ok else None, False

    def _release(self, connection):
        """Release the camera."""
        connection[0].release()


def _frames_in_duration(container, stream, rate: Fraction) -> int:
    """Frames that the duration a container announces implies (Matroska, ...), 0 when it announces none."""
    if stream.duration and stream.time_base:
        return round(stream.duration * stream.time_base * rate)
    if not container.duration:
        return 0
    return round((container.duration - (container.start_time or 0)) / av.time_base * rate)  # duration counts from 0


def _audio_route(on_audio: Callable | None, shift: float) -> Callable:
    """Where a connection's audio packets go: to ``on_audio``, moved by ``shift`` seconds (a reopened stream's audio
    onto the source's timeline), or nowhere."""
    if on_audio is None:
        return lambda packet: None
    if not shift:
        return on_audio

    def shifted(packet: av.Packet):
        ticks = round(shift / packet.time_base)
        packet.pts = None if packet.pts is None else packet.pts + ticks
        packet.dts = None if packet.dts is None else packet.dts + ticks
        on_audio(packet)

    return shifted


def reason(error: av.FFmpegError) -> str:
    """FFmpeg's words for an error, without the file name PyAV appends."""
    return error.strerror or type(error).__name__


def is_live(source: str | int) -> bool:
    """Whether ``source`` is live by default: a webcam index or a stream URL (not ``file://``)."""
    text = str(source)
    return text.isdigit() or ("://" in text and text.split("://")[0] not in LOCAL_SCHEMES)


def open_source(source: str | int | Path, live: bool | None = None, reconnect: float | None = None) -> Source:
    """Open a video file, webcam index or stream URL and decode its first frame, or raise a VideoError saying why.

    Args:
        source (str | int | Path): A video file, a webcam index or a stream URL.
        live (bool, optional): Drop the frames that arrive while inference is busy; default: webcams and streams.
        reconnect (float, optional): Seconds to keep trying to reopen a stream or webcam once it is lost (``math.inf``:
            forever, 0: never); default: forever for live ones, never otherwise.

    Examples:
        >>> source = open_source("video.mp4")
        >>> source.info.size, source.info.fps, source.info.frames
        ((640, 360), Fraction(179, 6), 1189)
    """
    text = str(source)
    live = is_live(text) if live is None else live
    reconnect = (math.inf if live else 0.0) if reconnect is None else reconnect
    if text.isdigit():
        return CameraSource(int(text), live, reconnect)
    if "://" not in text and not Path(text).is_file():
        raise VideoError(f"{text}: no such file")
    return FFmpegSource(text, live, reconnect)


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
