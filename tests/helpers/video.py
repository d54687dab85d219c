"""Test clips written with PyAV: the moving shapes of cspdet.data.shapes as H.264, with a variable frame rate and an
audio track on request, streamed to a local URL in real time, and read back (frames, timestamps, streams).
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from cspdet.data.shapes import video_frames

TIME_BASE = Fraction(1, 90000)  # MPEG's 90 kHz clock
AUDIO_RATE = 16000


def frame_times(frames: int, fps: float, vfr: bool) -> list[int]:
    """Presentation timestamps (TIME_BASE units) from 0.5 s on: steady at ``fps``, or with every third gap tripled."""
    gaps = [3 if vfr and i % 3 == 2 else 1 for i in range(frames)]
    return [round((0.5 + sum(gaps[:i]) / fps) / TIME_BASE) for i in range(frames)]


def _video_stream(container, size, fps: float):
    """Add an H.264 stream stamped in TIME_BASE to ``container``."""
    stream = container.add_stream("libx264", rate=round(fps), options={"preset": "ultrafast", "tune": "zerolatency"})
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p" if size[0] % 2 == size[1] % 2 == 0 else "yuv444p"  # 4:2:0 needs even sizes
    stream.codec_context.time_base = stream.time_base = TIME_BASE
    return stream


def _encode(container, stream, frames: int, size, fps: float, vfr: bool, seed: int, pace: bool = False):
    """Encode the shapes sequence into ``stream`` at the times of ``frame_times`` (in real time when ``pace``)."""
    start, times = time.monotonic(), frame_times(frames, fps, vfr)
    for (image, _), pts in zip(video_frames(frames, size, seed), times):
        picture = av.VideoFrame.from_ndarray(image, format="bgr24")
        picture.pts, picture.time_base = pts, TIME_BASE
        if pace:
            time.sleep(max(0.0, start + float((pts - times[0]) * TIME_BASE) - time.monotonic()))
        container.mux(stream.encode(picture))
    container.mux(stream.encode(None))


def write_clip(path, frames=60, size=(320, 240), fps=30.0, seed=0, vfr=False, audio=False) -> Path:
    """Write the shapes sequence as an H.264 video (MP4, MKV, ...); with ``audio``, a 440 Hz tone as AAC lasting the
    whole clip.
    """
    with av.open(str(path), "w") as container:
        video = _video_stream(container, size, fps)
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        _encode(container, video, frames, size, fps, vfr, seed)
        if sound:
            seconds = float(frame_times(frames, fps, vfr)[-1] * TIME_BASE) + 1 / fps
            samples = np.sin(np.arange(int(seconds * AUDIO_RATE)) * 2 * np.pi * 440 / AUDIO_RATE).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return Path(path)


def stream_clip(url: str, frames: int, fps: float, size=(320, 240), seed=0, wait: float = 30.0):
    """Send the shapes sequence as MPEG-TS to ``url`` (``tcp://127.0.0.1:PORT``) in real time at ``fps``, once
    something listens there (trying for ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        container = av.open(url, "w", format="mpegts")
        stream = _video_stream(container, size, fps)
        try:
            container.start_encoding()  # connects
            break
        except ConnectionRefusedError:
            container.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with container:
        _encode(container, stream, frames, size, fps, vfr=False, seed=seed, pace=True)


def read_video(path) -> dict:
    """What a video holds: codec, pixel format, size, every frame's time (seconds) and each stream's type and codec."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = [frame.pts * video.time_base for frame in container.decode(video)]
        return {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "size": (video.width, video.height),
            "times": times,
            "streams": [(s.type, s.codec_context.name) for s in container.streams],
            "format": container.format.name,
        }


def audio_packets(path) -> list[float]:
    """Start times (seconds) of the audio packets of ``path``."""
    with av.open(str(path)) as container:
        return [float(p.pts * p.time_base) for p in container.demux(audio=0) if p.pts is not None]
