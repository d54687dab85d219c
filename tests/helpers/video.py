"""Test clips written with PyAV: the moving shapes of cspdet.data.shapes as H.264, with a variable frame rate and an
audio track on request, streamed to a local URL in real time or served by a loopback camera that drops its clients,
and read back (frames, timestamps, streams).
"""

from __future__ import annotations

import itertools
import socket
import threading
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


class LoopbackCamera:
    """An HTTP MPEG-TS camera on 127.0.0.1, as IP cameras serve one: each client gets the shapes sequence in real time,
    stamped with the camera's own clock, and is dropped after its share of frames; after the last share the camera is
    gone (its port refuses connections). Between clients it stays away ``pause`` seconds (a client that connects then
    waits). Use it as a context manager; ``sent`` counts the frames each client got.

    Args:
        shares (tuple[int, ...]): Frames for each client in turn.
        fps (float): Frames per second.
        size (tuple[int, int]): Frame (width, height).
        pause (float): Seconds between dropping a client and serving the next.
        seed (int): Shapes sequence.
    """

    def __init__(self, shares=(60,), fps=30.0, size=(320, 240), pause=0.0, seed=0):
        self.shares, self.fps, self.size, self.pause, self.seed = shares, fps, size, pause, seed
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(60)  # a client that never comes ends the camera
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/cam.ts"
        self.sent, self.errors = [], []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=120)
        self.server.close()

    def _serve(self):
        images = (image for image, _ in video_frames(sum(self.shares), self.size, self.seed))
        start = time.monotonic()
        try:
            for i, share in enumerate(self.shares):
                if i:
                    time.sleep(self.pause)
                client, _ = self.server.accept()
                with client:
                    self.sent.append(self._stream(client, images, share, start))
        except Exception as e:
            self.errors.append(e)
        finally:
            self.server.close()

    def _stream(self, client, images, frames: int, start: float) -> int:
        """Answer one client's request and send it ``frames`` frames in real time; the frames it got."""
        request = b""
        while b"\r\n\r\n" not in request:
            request += client.recv(4096) or b"\r\n\r\n"
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n")
        sent = 0
        try:
            with client.makefile("wb") as out, av.open(out, "w", format="mpegts") as container:
                stream = _video_stream(container, self.size, self.fps)
                due = time.monotonic()
                for image in itertools.islice(images, frames):
                    time.sleep(max(0.0, due - time.monotonic()))
                    picture = av.VideoFrame.from_ndarray(image, format="bgr24")
                    picture.pts, picture.time_base = round((time.monotonic() - start) / TIME_BASE), TIME_BASE
                    container.mux(stream.encode(picture))
                    out.flush()
                    sent, due = sent + 1, due + 1 / self.fps
                container.mux(stream.encode(None))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away first
        return sent


def detecting_model(path, video, imgsz: int = 160, boxes: int = 8) -> Path:
    """Save an untrained csp_wrc-n that finds a few boxes, different ones in each frame of ``video``.

    Fresh weights shrink every activation towards zero through the depth, so each anchor would score the same. The
    BatchNorm layers therefore take their statistics from 16 letterboxed frames of ``video`` (at ``imgsz``: they
    depend on it), and the class logits are shifted so that ``boxes`` anchors of the middle frame score above 0.25.
    """
    import torch
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox

    torch.manual_seed(0)
    net = YOLO("csp_wrc-n.yaml").model
    with av.open(str(video)) as container:
        pictures = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    chosen = pictures[:: max(1, len(pictures) // 16)][:16]
    batch = np.stack([LetterBox(imgsz, auto=True, stride=32)(image=p)[..., ::-1] for p in chosen])
    batch = torch.from_numpy(batch.copy()).permute(0, 3, 1, 2).float() / 255
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # the plain mean over the batch
    heads = [branch[-1] for branch in net.model[-1].cv3]
    with torch.no_grad():
        net.train()(batch)
        for head in heads:
            head.bias.zero_()
        best = net.eval()(batch)[0][:, 4:].amax(1).sort(1, descending=True).values[:, boxes - 1]
        for head in heads:
            head.bias += torch.logit(torch.tensor(0.25)) - torch.logit(best.median())
    torch.save({"model": net.half(), "train_args": {}}, path)  # a checkpoint as Model.save writes it
    return Path(path)


def yolo_predict_detections(model, video, imgsz: int, folder) -> list:
    """The detections of the stock ``yolo predict`` (batch 1) on ``video``, read back from its label files."""
    from cspdet.video.detections import read_yolo_labels
    from helpers import yolo

    yolo("predict", f"model={model}", f"source={video}", f"imgsz={imgsz}", "save=False", "save_txt=True",
         "save_conf=True", "device=cpu", f"project={Path(folder).resolve()}", "name=labels", "exist_ok=True",
         "verbose=False")  # fmt: skip
    info = read_video(video)
    return read_yolo_labels(Path(folder) / "labels" / "labels", Path(video).stem, len(info["times"]), info["size"])
