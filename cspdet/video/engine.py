"""The overlap engine: decoding, inference and output run at once, linked by a bounded feed.

A reader thread decodes frames into the feed; inference workers (threads, one per predictor of the backend) take batches
from it, run the model's own ultralytics predictor and, when there are several of them, prepare each frame's outputs
(drawing) too; a writer thread puts the outputs back in the order their frames were taken and writes them (encoding;
with one worker it prepares them first, so that drawing overlaps inference). The feed bounds the frames taken but not
yet written, so memory stays flat on long videos. For a file every frame is kept (the reader waits when the feed is
full); for a live source the feed keeps only the newest frame that no worker has taken yet, so latency stays bounded and
the rest are counted as dropped. Ctrl-C, once or more, stops the reader and lets the taken frames finish, so the outputs
are finalised.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ultralytics.utils import LOGGER, TQDM

from cspdet.integration.predictor import source_types
from cspdet.video.sources import Frame, Source

# inference: preprocess, model, NMS and tracking; drawing: outputs prepared; encoding: outputs written in order
STAGES = ("decode", "inference", "drawing", "encoding")
QUEUED_BATCHES = 2  # decoded frames waiting for a worker, in batches per worker (files)
IN_FLIGHT_BATCHES = 4  # frames taken but not yet written, in batches per worker
SIGNAL_CHECK_S = 0.05  # how often the main thread wakes to run a pending Ctrl-C handler


class Feed:
    """Decoded frames on their way to the inference workers, with a bound on the frames taken but not yet written.

    Args:
        capacity (int): Most frames waiting for a worker (files: the reader waits when it is reached).
        in_flight (int): Most frames taken by workers and not yet written (workers wait when it is reached).
        live (bool): Keep only the newest waiting frame, counting the replaced ones in ``dropped``.
    """

    def __init__(self, capacity: int, in_flight: int, live: bool):
        """An empty, open feed."""
        self.frames, self.capacity, self.limit, self.live = collections.deque(), capacity, in_flight, live
        self.cond, self.ended, self.taken, self.in_flight, self.dropped = threading.Condition(), False, 0, 0, 0

    def put(self, frame: Frame) -> bool:
        """Add a decoded frame (waiting for room unless live); False once the feed has ended."""
        with self.cond:
            if self.live:
                self.dropped += len(self.frames)
                self.frames.clear()
            while not self.ended and len(self.frames) >= self.capacity:
                self.cond.wait()
            if self.ended:
                return False
            self.frames.append(frame)
            self.cond.notify_all()
            return True

    def take(self, n: int) -> list[Frame]:
        """Up to ``n`` frames in order, waiting for the first; ``[]`` once the feed has ended and is empty."""
        with self.cond:
            while not self.frames and not self.ended or self.frames and self.in_flight >= self.limit:
                self.cond.wait()
            batch = [self.frames.popleft() for _ in range(min(n, len(self.frames), self.limit - self.in_flight))]
            for frame in batch:
                frame.seq, self.taken = self.taken, self.taken + 1
            self.in_flight += len(batch)
            self.cond.notify_all()
            return batch

    def written(self):
        """One taken frame was written: room for another."""
        with self.cond:
            self.in_flight -= 1
            self.cond.notify_all()

    def end(self, drop: bool = False):
        """No more frames will come; with ``drop``, forget the waiting ones too (stop)."""
        with self.cond:
            self.ended = True
            if drop:
                self.frames.clear()
            self.cond.notify_all()


class _Batches:
    """A predictor's dataset: batches of frames taken from the feed, as ``(paths, images, info)``.

    Args:
        feed (Feed): Where the frames come from.
        batch (int): Most frames per batch.
        name (str): The source, reported as each frame's path (trackers reset when it changes).
        live (bool): Whether the source is live.
    """

    mode = "video"  # one tracker follows the frames in order

    def __init__(self, feed: Feed, batch: int, name: str, live: bool):
        """Wrap the feed; ``taken`` holds the frames served; ``busy``, ``waited``, ``drawing``: the worker's seconds."""
        self.feed, self.bs, self.name, self.source_type = feed, batch, name, source_types(live)
        self.taken, self.busy, self.waited, self.drawing = collections.deque(), 0.0, 0.0, 0.0

    def __iter__(self):
        """Return self: the feed is consumed once."""
        return self

    def __next__(self) -> tuple[list[str], list, list[str]]:
        """Return the next batch, as ultralytics' loaders do."""
        start = time.perf_counter()
        frames = self.feed.take(self.bs)
        self.waited += time.perf_counter() - start
        if not frames:
            raise StopIteration
        self.taken.extend(frames)
        return [self.name] * len(frames), [f.image for f in frames], [""] * len(frames)


@dataclass
class VideoSummary:
    """What one video run produced and where its time went.

    Args:
        source (str): The video source.
        out (Path): The annotated video written.
        frames (int): Frames written.
        detections (int): Boxes written, over all frames.
        seconds (float): Wall time from starting the stages to the finalised outputs.
        busy (dict[str, float]): Seconds each stage spent working (not waiting), keyed by STAGES.
        announced (int): Frames the container announces, 0 when unknown.
        interrupted (bool): Whether Ctrl-C stopped the run; ``out`` then holds the frames done so far.
        live (bool): Whether frames arriving while inference was busy were dropped.
        dropped (int): Frames dropped (live).
        latency (list[float]): Seconds from each written frame's capture (decoding) to its output.
    """

    source: str
    out: Path
    frames: int
    detections: int
    seconds: float
    busy: dict[str, float] = field(default_factory=dict)
    announced: int = 0
    interrupted: bool = False
    live: bool = False
    dropped: int = 0
    latency: list[float] = field(default_factory=list, repr=False)

    @property
    def fps(self) -> float:
        """Mean frames written per second over the whole run."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def truncated(self) -> bool:
        """Whether fewer frames could be decoded than the container announces."""
        return not self.interrupted and not self.live and self.frames < self.announced

    def latency_ms(self, q: int) -> float:
        """Capture-to-written latency at percentile ``q`` (50, 95), in milliseconds."""
        if len(self.latency) < 2:
            return 1e3 * sum(self.latency)
        return 1e3 * statistics.quantiles(self.latency, n=100, method="inclusive")[q - 1]

    def __str__(self) -> str:
        """One summary line: frames, detections, mean frames/s, live counts and the per-frame time of each stage."""
        stages = ", ".join(f"{k} {self.busy.get(k, 0.0) / max(self.frames, 1) * 1e3:.1f}" for k in STAGES)
        state = " (interrupted)" if self.interrupted else " (truncated)" if self.truncated else ""
        latency = f"latency p50 {self.latency_ms(50):.0f} ms, p95 {self.latency_ms(95):.0f} ms"
        live = f"; live: {self.dropped} dropped, {latency}" if self.live else ""
        return (
            f"{self.source}: {self.frames} frames{state}, {self.detections} detections, {self.fps:.1f} frames/s "
            f"in {self.seconds:.1f}s{live}; ms/frame: {stages} -> {self.out}"
        )


@contextlib.contextmanager
def ctrl_c_calls(function):
    """Inside, Ctrl-C calls ``function`` instead of raising KeyboardInterrupt (in the main thread; elsewhere no
    Ctrl-C arrives)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: function())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_for(thread: threading.Thread, timeout: float | None = None):
    """Join ``thread`` in short slices, so that Ctrl-C's handler runs at once: the kernel may deliver the signal to
    another thread, which does not wake a main thread blocked in a plain ``join()``."""
    end = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive() and (end is None or time.monotonic() < end):
        thread.join(SIGNAL_CHECK_S)


class Run:
    """One source through the engine; ``run()`` closes the sinks and returns the VideoSummary; ``stop()`` ends it
    early (Ctrl-C), keeping what was taken.

    Args:
        backend (Backend): From load_backend.
        source (Source): The opened source.
        sinks (list[Sink]): Outputs, the annotated video first.
        on_audio (Callable, optional): Receives the source's audio packets (the video sink's ``add_audio``).
    """

    def __init__(self, backend, source: Source, sinks: list, on_audio=None):
        """Set up the feed and the worker datasets."""
        self.backend, self.source, self.sinks, self.on_audio = backend, source, sinks, on_audio
        workers, batch = len(backend.predictors), 1 if source.live else backend.batch
        self.feed = Feed(QUEUED_BATCHES * batch * workers, IN_FLIGHT_BATCHES * batch * workers, source.live)
        self.batches = [_Batches(self.feed, batch, source.name, source.live) for _ in backend.predictors]
        self.results, self.errors, self.written_all = queue.Queue(), [], threading.Event()
        self.written, self.detections, self.latency, self.complete, self.interrupts = 0, 0, [], False, 0
        self.workers_prepare, self.drawing, self.encoding = workers > 1, 0.0, 0.0

    def stop(self):
        """Ctrl-C: stop reading; the frames already taken are finished and the outputs finalised."""
        self.interrupts += 1
        again = " again" if self.interrupts > 1 else ""
        LOGGER.warning(f"Ctrl-C{again}: finishing the frames already taken so that the outputs stay playable")
        self.feed.end(drop=True)

    def _fail(self, error: Exception):
        """Record a stage's error and stop the others."""
        self.errors.append(error)
        self.feed.end(drop=True)

    def _read(self):
        """Reader thread: decode into the feed until the source ends or the feed is ended; close the source once the
        writer is done with its audio packets."""
        try:
            self.complete = all(self.feed.put(frame) for frame in self.source.read(self.on_audio))
        except Exception as e:
            self._fail(e)
        finally:
            self.feed.end()
            self.written_all.wait()
            self.source.close()

    def _prepare(self, frame: Frame, result) -> tuple[list, int]:
        """Each sink's output for the frame, and the frame's box count."""
        return [sink.prepare(frame, result) for sink in self.sinks], len(result.boxes)

    def _infer(self, predictor, batches: _Batches):
        """Inference worker: run ``predictor`` on ``batches``; send each frame, with its prepared outputs when the
        workers prepare them (else its result), to the writer."""
        try:
            tick = time.perf_counter()
            for result in predictor.stream_inference(batches):
                done = time.perf_counter()
                batches.busy += done - tick  # waiting for frames included, subtracted at the end
                frame = batches.taken.popleft()
                self.results.put((frame, self._prepare(frame, result) if self.workers_prepare else result))
                tick = time.perf_counter()
                batches.drawing += tick - done
        except Exception as e:
            self._fail(e)

    def _write(self):
        """Writer thread: write the frames' outputs in the order the frames were taken; close the sinks."""
        pending, bar = {}, TQDM(total=self.source.frames or None, desc=Path(self.source.name).name, unit="frame")
        try:
            while (item := self.results.get()) is not None:
                pending[item[0].seq] = item
                while self.written in pending:
                    frame, outputs = pending.pop(self.written)
                    if not self.errors:
                        start = time.perf_counter()
                        prepared, boxes = outputs if self.workers_prepare else self._prepare(frame, outputs)
                        drawn = time.perf_counter()
                        for sink, output in zip(self.sinks, prepared):
                            sink.write(frame, output)
                        self.drawing += drawn - start
                        self.encoding += time.perf_counter() - drawn
                        self.detections += boxes
                        self.latency.append(time.monotonic() - frame.captured)
                    self.written += 1
                    self.feed.written()
                    bar.update()
        except Exception as e:
            self._fail(e)
            while self.results.get() is not None:
                self.feed.written()  # keep draining so that no worker waits for room
        finally:
            bar.close()
            for sink in self.sinks:
                try:
                    sink.close(complete=self.complete)  # finalises the container: the video is playable
                except Exception as e:
                    self.errors.append(e)
            self.written_all.set()

    def run(self) -> VideoSummary:
        """Run the stages until the source ends or Ctrl-C; raise the first error of any stage."""
        reader, writer = threading.Thread(target=self._read, daemon=True), threading.Thread(target=self._write)
        pairs = zip(self.backend.predictors, self.batches)
        workers = [threading.Thread(target=self._infer, args=pair, daemon=True) for pair in pairs]
        start = time.perf_counter()
        with self.backend.threads_set():
            for thread in (reader, writer, *workers):
                thread.start()
            for thread in workers:
                wait_for(thread)  # they end once the feed has ended: source read, Ctrl-C or an error
            self.results.put(None)
            wait_for(writer)
            wait_for(reader, timeout=1.0)  # a stream blocked in a read closes itself after its read timeout
        if self.errors:
            raise self.errors[0]
        busy = {
            "decode": self.source.busy,
            "inference": sum(b.busy - b.waited for b in self.batches),
            "drawing": self.drawing + sum(b.drawing for b in self.batches),
            "encoding": self.encoding,
        }
        return VideoSummary(
            self.source.name,
            self.sinks[0].path,
            self.written,
            self.detections,
            time.perf_counter() - start,
            busy,
            self.source.frames,
            self.interrupts > 0,
            self.source.live,
            self.feed.dropped,
            self.latency,
        )
