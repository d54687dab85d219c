"""The overlap engine: decoding, inference and output run at once, for one source or several, linked by a bounded feed.

A reader thread per source decodes its frames into the source's lane of the feed; inference workers (threads, one per
predictor of the backend) take batches from all lanes in turn, run the model's own ultralytics predictor and prepare
each frame's outputs (drawing); a writer thread per source puts its outputs back in the order its frames were taken
and writes them (encoding). Each lane bounds the frames taken but not yet written, so memory stays flat on long videos
and a slow output holds back only its own source. For a file every frame is kept (the reader waits when its lane is
full); for a live source the lane keeps only the newest frame that no worker has taken yet, so latency stays bounded
and the rest are counted as dropped. A source that fails (a broken output, a decoder error) ends alone; the others go
on. Ctrl-C, once or more, stops the readers and lets the taken frames finish, so the outputs are finalised.

Time is counted in CPU seconds per thread (``time.thread_time``), so waiting costs nothing and the stages add up to
what the run costs the machine, apart from threads of FFmpeg and of the runtimes that these clocks do not see.
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

from cspdet.integration.predictor import source_types, switch_trackers
from cspdet.video.sources import Frame, Gap, Source, VideoError

# CPU per stage: decode (demux, decode, BGR), prepost (letterbox, NMS, results), runtime (the model's own inference),
# drawing (the outputs prepared: boxes drawn, colours converted, rows formatted), encoding (the outputs written)
STAGES = ("decode", "prepost", "runtime", "drawing", "encoding")
QUEUED_BATCHES = 2  # decoded frames waiting for a worker, per lane, in batches per worker (files)
IN_FLIGHT_BATCHES = 4  # frames taken but not yet written, per lane, in batches per worker
SIGNAL_CHECK_S = 0.05  # how often the main thread wakes to run a pending Ctrl-C handler


class Lane:
    """One source's place in the feed: its frames waiting for a worker and the count of those on their way out.

    Args:
        waiting_max (int): Most frames waiting for a worker (files: the reader waits when it is reached).
        in_flight_max (int): Most frames taken by workers and not yet written (workers skip the lane at it).
        live (bool): Keep only the newest waiting frame, counting the replaced ones in ``dropped``.
        group (Hashable): Lanes of one group may share a batch (frames of one size: ultralytics letterboxes a batch
            of mixed sizes otherwise than each frame alone).
    """

    def __init__(self, waiting_max: int, in_flight_max: int, live: bool, group=None):
        """An empty, open lane."""
        self.waiting, self.waiting_max, self.in_flight_max = collections.deque(), waiting_max, in_flight_max
        self.live, self.group = live, group
        self.in_flight, self.taken, self.dropped, self.ended = 0, 0, 0, False

    @property
    def ready(self) -> bool:
        """Whether a worker may take a frame from the lane now."""
        return bool(self.waiting) and self.in_flight < self.in_flight_max


class Feed:
    """Decoded frames of every source on their way to the inference workers, one lane per source.

    Readers wait on ``room`` (a lane with room), workers on ``ready`` (a lane with a frame they may take); each change
    wakes only those it may concern.

    Args:
        lanes (list[Lane]): One per source, in the order of the sources.
    """

    def __init__(self, lanes: list[Lane]):
        """Open lanes; workers take from them in turn, starting with the first."""
        lock = threading.RLock()  # re-entrant: Ctrl-C's handler ends the lanes in the main thread, maybe inside ``end``
        self.lanes, self.room, self.ready, self.turn = lanes, threading.Condition(lock), threading.Condition(lock), 0

    def put(self, lane: int, frame: Frame) -> bool:
        """Add a decoded frame to its lane (waiting for room unless live); False once the lane has ended."""
        with self.room:
            line = self.lanes[lane]
            if line.live:
                gaps = [f.gap for f in line.waiting if f.gap]
                if gaps and frame.gap is None:
                    frame.gap = gaps[0]  # the frame that ended a gap was dropped: the next one kept records it
                line.dropped += len(line.waiting)
                line.waiting.clear()
            while not line.ended and len(line.waiting) >= line.waiting_max:
                self.room.wait()
            if line.ended:
                return False
            frame.lane = lane
            line.waiting.append(frame)
            self.ready.notify()
            return True

    def take(self, n: int) -> list[Frame]:
        """Up to ``n`` frames from the lanes in turn (lanes of one group only), waiting for the first; ``[]`` once
        every lane has ended and is empty. Each frame's ``seq`` is its order among its lane's frames."""
        with self.ready:
            while not any(line.ready for line in self.lanes):
                if all(line.ended and not line.waiting for line in self.lanes):
                    self.ready.notify()  # the next worker finds the end too
                    return []
                self.ready.wait()
            batch, count = [], len(self.lanes)
            while len(batch) < n:
                for step in range(count):
                    line = self.lanes[(self.turn + step) % count]
                    if line.ready and (not batch or line.group == self.lanes[batch[0].lane].group):
                        break
                else:
                    break
                frame = line.waiting.popleft()
                frame.seq, line.taken, line.in_flight = line.taken, line.taken + 1, line.in_flight + 1
                batch.append(frame)
                self.turn = (frame.lane + 1) % count
            self.room.notify_all()  # readers of the lanes taken from
            if any(line.ready for line in self.lanes):
                self.ready.notify()  # frames left for another worker
            return batch

    def release(self, lane: int):
        """One of the lane's taken frames was written: room for another."""
        with self.ready:
            line = self.lanes[lane]
            line.in_flight -= 1
            if line.ready:
                self.ready.notify()

    def end(self, lane: int | None = None, drop: bool = False):
        """No more frames will come into ``lane`` (every lane when None); with ``drop``, forget its waiting ones."""
        with self.ready:
            for line in self.lanes if lane is None else [self.lanes[lane]]:
                line.ended = True
                if drop:
                    line.waiting.clear()
            self.ready.notify_all()
            self.room.notify_all()


class _Batches:
    """A predictor's dataset: batches of frames taken from the feed, as ``(paths, images, info)``.

    Args:
        feed (Feed): Where the frames come from.
        batch (int): Most frames per batch.
        names (list[str]): Each lane's source, reported as its frames' path.
        live (bool): Whether the sources are live.
        predictor (BasePredictor, optional): A tracking predictor that follows each source with its own trackers
            (the feed's lanes then group no two sources).
    """

    mode = "video"  # one tracker follows the frames in order

    def __init__(self, feed: Feed, batch: int, names: list[str], live: bool, predictor=None):
        """Wrap the feed; ``taken`` holds the frames served, in order."""
        self.feed, self.bs, self.names, self.source_type = feed, batch, names, source_types(live)
        self.predictor, self.trackers, self.taken = predictor, {}, collections.deque()

    def __iter__(self):
        """Return self: the feed is consumed once."""
        return self

    def __next__(self) -> tuple[list[str], list, list[str]]:
        """Return the next batch, as ultralytics' loaders do."""
        frames = self.feed.take(self.bs)
        if not frames:
            raise StopIteration
        if self.predictor is not None:
            switch_trackers(self.predictor, self.trackers, frames[0].lane)
        self.taken.extend(frames)
        return [self.names[f.lane] for f in frames], [f.image for f in frames], [""] * len(frames)


@dataclass
class VideoSummary:
    """What one source's run produced and what it cost.

    Args:
        source (str): The video source.
        out (Path): The annotated video written.
        frames (int): Frames written.
        detections (int): Boxes written, over all frames.
        seconds (float): Wall time from starting the stages to the finalised outputs.
        cpu (dict[str, float]): CPU seconds of each stage (STAGES) for this source's frames, and ``total``: the
            process's CPU over the run (all threads), shared among the sources by their frames.
        announced (int): Frames the container announces (or its duration implies), 0 when unknown.
        undecodable (int): Frames that could not be decoded: those announced but never decoded (a file cut short or
            broken off), or else the packets the decoder refused.
        interrupted (bool): Whether Ctrl-C stopped the run; ``out`` then holds the frames done so far.
        live (bool): Whether frames arriving while inference was busy were dropped.
        dropped (int): Frames dropped (live).
        gaps (list[Gap]): Times a live source was lost and came back (the real time between the frames around it).
        lost (float, optional): Time (seconds on the source's timeline) of the last frame before a loss that lasted
            longer than the source's ``reconnect`` window, which ended its run.
        latency (list[float]): Seconds from each written frame's capture (decoding) to its output.
    """

    source: str
    out: Path
    frames: int
    detections: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    announced: int = 0
    undecodable: int = 0
    interrupted: bool = False
    live: bool = False
    dropped: int = 0
    gaps: list[Gap] = field(default_factory=list)
    lost: float | None = None
    latency: list[float] = field(default_factory=list, repr=False)

    @property
    def fps(self) -> float:
        """Mean frames written per second over the whole run."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def truncated(self) -> bool:
        """Whether fewer frames could be decoded than the container announces."""
        return not self.interrupted and not self.live and self.undecodable > 0

    def cpu_ms(self, stage: str) -> float:
        """CPU milliseconds per written frame of ``stage`` (one of STAGES, ``total``, or ``pipeline``: all but the
        runtime's inference)."""
        if stage == "pipeline":
            return self.cpu_ms("total") - self.cpu_ms("runtime")
        return self.cpu.get(stage, 0.0) / max(self.frames, 1) * 1e3

    def latency_ms(self, q: int) -> float:
        """Capture-to-written latency at percentile ``q`` (50, 95), in milliseconds."""
        if len(self.latency) < 2:
            return 1e3 * sum(self.latency)
        return 1e3 * statistics.quantiles(self.latency, n=100, method="inclusive")[q - 1]

    def as_dict(self) -> dict:
        """The summary as plain values (JSON), with per-frame CPU milliseconds and latency percentiles."""
        return {
            "source": self.source,
            "out": str(self.out),
            "frames": self.frames,
            "detections": self.detections,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "cpu_ms_per_frame": {k: round(self.cpu_ms(k), 3) for k in (*STAGES, "pipeline", "total")},
            "announced": self.announced,
            "undecodable": self.undecodable,
            "interrupted": self.interrupted,
            "live": self.live,
            "dropped": self.dropped,
            "gaps": [{"start": round(g.start, 6), "length": round(g.length, 6)} for g in self.gaps],
            "lost": self.lost,
            **({"latency_ms": {"p50": self.latency_ms(50), "p95": self.latency_ms(95)}} if self.live else {}),
        }

    def __str__(self) -> str:
        """One summary line: frames, detections, mean frames/s, what was lost, and the CPU per frame of each stage."""
        state = " (interrupted)" if self.interrupted else ""
        broken = f", {self.undecodable} could not be decoded" if self.undecodable else ""
        latency = f"latency p50 {self.latency_ms(50):.0f} ms, p95 {self.latency_ms(95):.0f} ms"
        live = f"; live: {self.dropped} dropped, {latency}" if self.live else ""
        gaps = ", ".join(f"{g.length:.1f} s at {g.start:.1f} s" for g in self.gaps)
        gaps = f"; {len(self.gaps)} gap{'s' * (len(self.gaps) > 1)} ({gaps})" if self.gaps else ""
        lost = f"; lost after {self.lost:.1f} s" if self.lost is not None else ""
        stages = ", ".join(f"{k} {self.cpu_ms(k):.1f}" for k in STAGES)
        return (
            f"{self.source}: {self.frames} frames{state}{broken}, {self.detections} detections, "
            f"{self.fps:.1f} frames/s in {self.seconds:.1f}s{live}{gaps}{lost}; CPU ms/frame: {stages}; pipeline "
            f"{self.cpu_ms('pipeline'):.1f} of {self.cpu_ms('total'):.1f} -> {self.out}"
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


class _Output:
    """One source's way out: its sinks, its results queue, what was written and what went wrong."""

    def __init__(self, source: Source, sinks: list):
        self.source, self.sinks, self.results, self.done = source, sinks, queue.Queue(), threading.Event()
        self.written, self.detections, self.latency, self.encoding = 0, 0, [], 0.0
        self.error, self.stopped = None, False


class Run:
    """Sources through the engine at once, each with its own outputs; ``run()`` returns a VideoSummary (or the
    VideoError that ended it) per source; ``stop()`` ends it early (Ctrl-C), keeping what was taken.

    Args:
        backend (Backend): From load_backend.
        sources (list[Source]): The opened sources.
        sinks (list[list[Sink]]): Each source's outputs (not yet entered), its annotated video first; a VideoSink
            there receives the source's audio.
    """

    def __init__(self, backend, sources: list[Source], sinks: list[list]):
        """Set up the lanes and the worker datasets."""
        self.backend, self.outputs = backend, [_Output(s, k) for s, k in zip(sources, sinks)]
        workers, live = len(backend.predictors), any(s.live for s in sources)
        batch = 1 if live else backend.batch
        tracker = backend.predictors[0] if backend.tracking and len(sources) > 1 else None
        waiting, in_flight = QUEUED_BATCHES * batch * workers, IN_FLIGHT_BATCHES * batch * workers
        groups = range(len(sources)) if tracker else [s.info.size for s in sources]
        self.feed = Feed([Lane(waiting, in_flight, s.live, group) for s, group in zip(sources, groups)])
        names = [s.name for s in sources]
        self.batches = [_Batches(self.feed, batch, names, live, tracker) for _ in backend.predictors]
        self.errors, self.interrupts = [], 0  # errors: of inference, which ends every source
        self.cpu = dict.fromkeys(("prepost", "runtime", "drawing"), 0.0)

    def stop(self):
        """Ctrl-C: stop reading; the frames already taken are finished and the outputs finalised."""
        self.interrupts += 1
        again = " again" if self.interrupts > 1 else ""
        LOGGER.warning(f"Ctrl-C{again}: finishing the frames already taken so that the outputs stay playable")
        for output in self.outputs:
            output.source.stop()
        self.feed.end(drop=True)

    def _fail(self, error: Exception):
        """An inference worker's error: stop every source."""
        self.errors.append(error)
        for output in self.outputs:
            output.source.stop()
        self.feed.end(drop=True)

    def _fail_source(self, lane: int, error: Exception):
        """One source's error (reading or writing): stop that source alone."""
        output = self.outputs[lane]
        output.error = output.error or error
        output.source.stop()
        self.feed.end(lane, drop=True)

    def _read(self, lane: int):
        """Reader thread: decode into the lane until the source ends or the lane is ended; close the source once the
        writer is done with its audio packets."""
        output = self.outputs[lane]
        try:
            for frame in output.source.read(getattr(output.sinks[0], "add_audio", None)):
                if not self.feed.put(lane, frame):
                    break
        except Exception as e:
            self._fail_source(lane, e if isinstance(e, VideoError) else VideoError(f"{output.source.name}: {e}"))
        finally:
            self.feed.end(lane)
            output.done.wait()
            output.source.close()

    def _infer(self, predictor, batches: _Batches):
        """Inference worker: run ``predictor`` on ``batches``; prepare each frame's outputs and send them to its
        source's writer."""
        try:
            tick, runtime = time.thread_time(), predictor.runtime
            for result in predictor.stream_inference(batches):
                done = time.thread_time()
                self.cpu["prepost"] += done - tick  # the runtime's inference included: taken out below
                frame = batches.taken.popleft()
                output = self.outputs[frame.lane]
                if not output.stopped:
                    output.results.put((frame, [s.prepare(frame, result) for s in output.sinks], len(result.boxes)))
                else:
                    output.results.put((frame, None, 0))
                tick = time.thread_time()
                self.cpu["drawing"] += tick - done
            self.cpu["runtime"] += predictor.runtime - runtime
            self.cpu["prepost"] -= predictor.runtime - runtime
        except Exception as e:
            self._fail(e)

    def _write(self, lane: int, progress):
        """Writer thread: write one source's outputs in the order its frames were taken."""
        output, pending = self.outputs[lane], {}
        try:
            while (item := output.results.get()) is not None:
                pending[item[0].seq] = item
                while output.written in pending:
                    frame, prepared, boxes = pending.pop(output.written)
                    if prepared is not None and not output.stopped:
                        start = time.thread_time()
                        for sink, out in zip(output.sinks, prepared):
                            try:
                                sink.write(frame, out)
                            except Exception as e:  # a full disk, a refused frame: this source ends here
                                output.stopped = True
                                self._fail_source(lane, VideoError(f"{sink.path}: cannot write it ({e})"))
                                break
                        output.encoding += time.thread_time() - start
                        output.detections += boxes
                        output.latency.append(time.monotonic() - frame.captured)
                    output.written += 1
                    self.feed.release(lane)
                    progress()
        finally:
            output.done.set()

    def _open_outputs(self) -> list[contextlib.ExitStack | None]:
        """Enter each source's sinks (opening the files, so that a refused output fails before any work); a source
        whose outputs cannot be opened fails alone."""
        stacks = []
        for lane, output in enumerate(self.outputs):
            stack = contextlib.ExitStack()
            try:
                for sink in output.sinks:
                    stack.enter_context(sink)
            except VideoError as e:
                stack.close()
                output.error, stack = e, None
                output.source.close()
                self.feed.end(lane, drop=True)
            stacks.append(stack)
        return stacks

    def run(self) -> list[VideoSummary | VideoError]:
        """Run the stages until every source has ended (or Ctrl-C); raise an inference error, return each source's
        summary or the VideoError that ended it."""
        stacks = self._open_outputs()
        lanes = [i for i, stack in enumerate(stacks) if stack is not None]
        frames = [o.source.info.frames for o in self.outputs]
        names = [Path(o.source.name).name for o in self.outputs]
        bar = TQDM(total=sum(frames) if all(frames) else None, desc=names[0] if len(names) == 1 else f"{len(names)} "
                   "sources", unit="frame")  # fmt: skip
        lock = threading.Lock()

        def progress():
            with lock:
                bar.update()

        readers = [threading.Thread(target=self._read, args=(i,), daemon=True) for i in lanes]
        writers = [threading.Thread(target=self._write, args=(i, progress)) for i in lanes]
        pairs = zip(self.backend.predictors, self.batches)
        workers = [threading.Thread(target=self._infer, args=pair, daemon=True) for pair in pairs]
        start, cpu = time.perf_counter(), time.process_time()
        try:
            with self.backend.threads_set():
                for thread in (*readers, *writers, *workers):
                    thread.start()
                for thread in workers:
                    wait_for(thread)  # they end once every lane has ended: sources read, Ctrl-C or an error
                for output in self.outputs:
                    output.results.put(None)
                for thread in writers:
                    wait_for(thread)
        finally:
            bar.close()
            for output, stack in zip(self.outputs, stacks):
                if stack is not None:
                    self._close_outputs(output, stack)
        for thread in readers:
            wait_for(thread, timeout=1.0)  # a stream blocked in a read gives up after its read timeout
        if self.errors:
            raise self.errors[0]
        seconds, total = time.perf_counter() - start, time.process_time() - cpu
        return [self._summary(lane, seconds, total) for lane in range(len(self.outputs))]

    def _close_outputs(self, output: _Output, stack: contextlib.ExitStack):
        """Leave a source's sinks: finished (and moved into place) after a run that went well, else as each sink
        handles an error."""
        error = self.errors[0] if self.errors else output.error
        for sink in output.sinks:
            sink.complete = error is None and not self.interrupts  # read to its end: the rest of the audio goes in
        try:
            stack.__exit__(type(error) if error else None, error, None)
        except VideoError as e:
            output.error = output.error or e

    def _summary(self, lane: int, seconds: float, total: float) -> VideoSummary | VideoError:
        """One source's summary, or the error that ended it."""
        output = self.outputs[lane]
        if output.error is not None:
            return output.error
        source, share = output.source, output.written / max(sum(o.written for o in self.outputs), 1)
        cpu = {"decode": source.busy, **{k: v * share for k, v in self.cpu.items()}, "encoding": output.encoding}
        info, interrupted = source.info, self.interrupts > 0
        broken = info.frames and not source.live and not interrupted
        undecodable = max(info.frames - source.decoded, 0) if broken else 0
        return VideoSummary(
            source.name,
            output.sinks[0].path,
            output.written,
            output.detections,
            seconds,
            {**cpu, "total": total * share},
            info.frames,
            undecodable or source.undecodable,
            interrupted,
            source.live,
            self.feed.lanes[lane].dropped,
            source.gaps,
            source.lost,
            output.latency,
        )
