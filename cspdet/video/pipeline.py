"""Video inference pipeline: decoding, batched inference and drawing/encoding overlap, linked by bounded queues.

A decoder thread reads frames into a bounded queue; inference workers (the calling thread, plus a second thread on CPU
when not tracking) run the model's own ultralytics predictor on batches taken from that queue (its preprocessing, NMS
and trackers, so detections equal ``yolo predict``'s); a writer thread puts the results back in frame order, draws
each, encodes it and writes the detection rows. A semaphore bounds the frames in flight, so memory stays flat on long
videos. Outputs go to temporary files that are moved into place at the end, also after Ctrl-C, which keeps the frames
done so far as a playable video.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from ultralytics import YOLO
from ultralytics.utils import LOGGER, TQDM
from ultralytics.utils.torch_utils import select_device

from cspdet.integration.predictor import queue_predictor, register_tracker, share_predictor, source_types
from cspdet.video.io import StagedFile, Video, VideoError, check_output, find_sources, open_video, open_writer

STAGES = ("decode", "inference", "drawing", "encoding")  # inference: preprocess, model, NMS and tracking
TRACKERS = ("bytetrack", "botsort")
BOX_TASKS = ("detect", "segment", "pose")


@dataclass
class VideoSummary:
    """What one video run produced and where its time went.

    Args:
        source (str): The video source.
        out (Path): The annotated video written.
        frames (int): Frames processed (and written).
        detections (int): Boxes written, over all frames.
        seconds (float): Wall time from starting the stages to the finalised outputs.
        busy (dict[str, float]): Seconds each stage spent working (not waiting on a queue), keyed by STAGES.
        announced (int): Frames the container announces, 0 when unknown.
        interrupted (bool): Whether Ctrl-C stopped the run; ``out`` then holds the frames done so far.
    """

    source: str
    out: Path
    frames: int
    detections: int
    seconds: float
    busy: dict[str, float] = field(default_factory=dict)
    announced: int = 0
    interrupted: bool = False

    @property
    def fps(self) -> float:
        """Mean frames per second over the whole run."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def truncated(self) -> bool:
        """Whether fewer frames could be decoded than the container announces."""
        return not self.interrupted and self.frames < self.announced

    def __str__(self) -> str:
        """One summary line: frames, detections, mean frames/s and the per-frame time of each stage."""
        stages = ", ".join(f"{k} {self.busy.get(k, 0.0) / max(self.frames, 1) * 1e3:.1f}" for k in STAGES)
        state = " (interrupted)" if self.interrupted else " (truncated)" if self.truncated else ""
        return (
            f"{self.source}: {self.frames} frames{state}, {self.detections} detections, {self.fps:.1f} frames/s "
            f"in {self.seconds:.1f}s; ms/frame: {stages} -> {self.out}"
        )


class _FrameQueue:
    """Predictor dataset: batches of the (index, frame) items a decoder thread puts in ``frames``, until a ``None``.

    A batch waits for its first frame only and takes the others already decoded, so a worker never holds frames while
    waiting for more. Several workers may share the queue; ``indices`` keeps the frame indices of the batches served.

    Args:
        frames (queue.Queue): Decoded (index, frame) items, ended by ``None``.
        batch (int): Most frames per batch.
        path (str): The source, reported as each frame's path (trackers reset when it changes).
        stream (bool): Whether the source is live (no announced frame count).
        stop (threading.Event): Set to end the batches early (Ctrl-C, errors).
    """

    mode = "video"  # one tracker follows the frames in order

    def __init__(self, frames: queue.Queue, batch: int, path: str, stream: bool, stop: threading.Event):
        """Wrap the queue; ``busy`` and ``waited``: the worker's seconds in inference and waiting for frames."""
        self.frames, self.bs, self.path, self.stop, self.ended = frames, batch, path, stop, False
        self.source_type, self.indices = source_types(stream), collections.deque()
        self.busy = self.waited = 0.0

    def __iter__(self):
        """Return self: the queue is consumed once."""
        return self

    def __next__(self) -> tuple[list[str], list, list[str]]:
        """Return the next (paths, frames, info) batch, as ultralytics' loaders do."""
        start, indices, images = time.perf_counter(), [], []
        while not self.ended and not self.stop.is_set() and len(images) < self.bs:
            try:
                item = self.frames.get(block=not images)
            except queue.Empty:
                break
            if item is None:
                self.ended = True
                self.frames.put(None)  # for the other workers
            else:
                indices.append(item[0])
                images.append(item[1])
        self.waited += time.perf_counter() - start
        if not images:
            raise StopIteration
        self.indices.extend(indices)
        return [self.path] * len(images), images, [""] * len(images)


def load_predictor(
    model: str | Path,
    imgsz: int | list[int] = 640,
    conf: float | None = None,
    iou: float = 0.7,
    batch: int | None = None,
    device: str | None = None,
    tracker: str | None = None,
):
    """Load an ultralytics model and return its task's predictor, set up to read frames from a queue.

    Args:
        model (str | Path): A cspdet or other ultralytics ``.pt``, or an export of one such as ``.onnx``.
        imgsz (int | list[int]): Inference size, as ``yolo predict imgsz=``.
        conf (float, optional): Confidence threshold; ultralytics' default when None (0.25, or 0.1 when tracking).
        iou (float): NMS IoU threshold.
        batch (int, optional): Frames per inference batch; 32 on CUDA and 4 on CPU when None.
        device (str, optional): ``cpu``, ``0``, ... as ``yolo predict device=``; CUDA runs in half precision.
        tracker (str, optional): ``bytetrack`` or ``botsort`` to track objects with ultralytics' trackers.

    Returns:
        (ultralytics.engine.predictor.BasePredictor): The predictor, its model loaded on the device. For a PyTorch
            model on a multi-core CPU without tracking, torch gets half the cores: predict_video runs two workers.
    """
    if tracker is not None and tracker not in TRACKERS:
        raise ValueError(f"tracker={tracker!r}: use one of {', '.join(TRACKERS)}")
    if not Path(model).exists():
        raise VideoError(f"{model}: no such model file")
    yolo = YOLO(model)
    if yolo.task not in BOX_TASKS:
        raise VideoError(f"{model}: a '{yolo.task}' model; video inference needs boxes ({', '.join(BOX_TASKS)})")
    cuda = select_device(device, verbose=False).type == "cuda"
    args = {
        **yolo.overrides,
        "mode": "track" if tracker else "predict",
        "imgsz": imgsz,
        "conf": (0.1 if tracker else 0.25) if conf is None else conf,
        "iou": iou,
        "batch": batch or (32 if cuda else 4),
        "device": device,
        "quantize": 16 if cuda else None,
        "rect": True,  # as Model.predict: minimal letterbox padding
        "save": False,
        "verbose": False,
        "embed": None,
    }
    if tracker:
        args["tracker"] = f"{tracker}.yaml"
        register_tracker(yolo)
    predictor = queue_predictor(yolo, args)
    if _workers(predictor) > 1:
        torch.set_num_threads(max(1, os.cpu_count() // 2))  # the cores are split between the two inference workers
    return predictor


def _workers(predictor) -> int:
    """Inference workers for ``predictor``: two for a PyTorch model on a multi-core CPU (one batch each, in parallel),
    else one (CUDA runs a whole batch at once, ONNX Runtime has its own threads, trackers need the frames in order).
    """
    cpu = predictor.device.type == "cpu" and (os.cpu_count() or 1) > 1
    return 2 if cpu and predictor.model.format == "pt" and predictor.args.mode != "track" else 1


class _Run:
    """One video through the pipeline; ``run()`` returns its VideoSummary. Outputs are committed by the caller.

    Args:
        predictor (BasePredictor): From load_predictor.
        video (Video): The opened source.
        outputs (dict[str, StagedFile]): ``video`` and optionally ``detections`` and ``mot`` files.
    """

    def __init__(self, predictor, video: Video, outputs: dict[str, StagedFile]):
        """Create the workers, the bounded queues, the bound on frames in flight and the stage clocks."""
        self.video, self.outputs = video, outputs
        self.workers = [predictor] + [share_predictor(predictor) for _ in range(_workers(predictor) - 1)]
        batch = predictor.args.batch
        self.frames, self.results = queue.Queue(2 * batch), queue.Queue(2 * batch * len(self.workers))
        self.slots = threading.Semaphore(4 * batch * len(self.workers))  # frames decoded but not yet written
        self.stop, self.abort, self.errors = threading.Event(), False, []
        self.busy, self.written, self.detections = dict.fromkeys(STAGES, 0.0), 0, 0

    def _wait(self, attempt) -> bool:
        """Retry ``attempt`` (a call with a timeout returning True once done) until it succeeds or ``stop`` is set."""
        while not self.stop.is_set():
            if attempt():
                return True
        return False

    def _put_frame(self, item) -> bool:
        """Put ``item`` in the frame queue unless ``stop`` is set first; return whether it was put."""

        def attempt():
            try:
                self.frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                return False

        return self._wait(attempt)

    def _decode(self):
        """Decoder thread: put (index, frame) items in the frame queue until the source ends or ``stop``, then None."""
        try:
            frame, ok, index = self.video.first, True, 0
            while ok and self._wait(lambda: self.slots.acquire(timeout=0.1)) and self._put_frame((index, frame)):
                index += 1
                start = time.perf_counter()
                ok, frame = self.video.capture.read()
                self.busy["decode"] += time.perf_counter() - start
        except Exception as e:
            self.errors.append(e)
        finally:
            if not self._put_frame(None):
                with contextlib.suppress(queue.Full):
                    self.frames.put_nowait(None)  # wakes a worker waiting for a frame after ``stop``

    def _infer(self, predictor, dataset: _FrameQueue):
        """Inference worker: run ``predictor`` on the batches of ``dataset``, sending (frame index, result) on."""
        results = predictor.stream_inference(dataset)
        try:
            tick = time.perf_counter()
            for result in results:
                dataset.busy += time.perf_counter() - tick
                self.results.put((dataset.indices.popleft(), result))
                if self.errors:
                    break
                tick = time.perf_counter()
        finally:
            results.close()  # releases the predictor's lock if Ctrl-C came between two frames

    def _helper(self, predictor, dataset: _FrameQueue):
        """Second inference worker's thread: _infer, its error stopping the run."""
        try:
            self._infer(predictor, dataset)
        except Exception as e:
            self.errors.append(e)
            self.stop.set()

    def _write(self):
        """Writer thread: put results back in frame order; draw, encode and write the rows of each until a ``None``."""
        files, writer, pending = {}, None, {}
        bar = TQDM(total=self.video.frames or None, desc=Path(self.video.name).name, unit="frame")
        try:
            files = {k: open(v.tmp, "w") for k, v in self.outputs.items() if k != "video"}
            while (item := self.results.get()) is not None:
                pending[item[0]] = item[1]
                while self.written in pending:
                    result = pending.pop(self.written)
                    if not self.abort:
                        writer = self._encode(result, writer)
                        self._write_rows(self.written, result, files)
                    self.written += 1
                    self.slots.release()
                    bar.update()
        except Exception as e:
            self.errors.append(e)
            self.stop.set()
            while self.results.get() is not None:
                pass  # keep draining so that no worker blocks
        finally:
            if writer is not None:
                writer.release()  # finalises the container: the video is playable
            for f in files.values():
                f.close()
            bar.close()

    def _encode(self, result, writer):
        """Draw ``result`` as ``yolo predict`` does and encode it, opening the video writer on the first frame."""
        args, start = self.workers[0].args, time.perf_counter()
        image = result.plot(
            line_width=args.line_width, boxes=args.show_boxes, conf=args.show_conf, labels=args.show_labels
        )
        drawn = time.perf_counter()
        if writer is None:
            writer = open_writer(self.outputs["video"], self.video.fps, (image.shape[1], image.shape[0]))
        writer.write(image)
        self.busy["drawing"] += drawn - start
        self.busy["encoding"] += time.perf_counter() - drawn
        return writer

    def _write_rows(self, index: int, result, files: dict):
        """Append this frame's boxes to the detections (JSON lines) and MOT files that are open."""
        boxes = result.boxes
        xyxy, scores, classes = boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.int().tolist()
        ids = boxes.id.int().tolist() if boxes.is_track else None
        self.detections += len(xyxy)
        if "detections" in files:
            rows = [[*(round(v, 2) for v in b), round(s, 5), c] for b, s, c in zip(xyxy, scores, classes, strict=True)]
            files["detections"].write(json.dumps({"frame": index, "boxes": rows, **({"ids": ids} if ids else {})}))
            files["detections"].write("\n")
        if "mot" in files and ids:
            files["mot"].writelines(
                f"{index + 1},{i},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.5f},-1,-1,-1\n"
                for (x1, y1, x2, y2), s, i in zip(xyxy, scores, ids, strict=True)
            )

    def run(self) -> VideoSummary:
        """Run the stages until the source ends or Ctrl-C; raise the first error of any stage."""
        video, workers, interrupted = self.video, self.workers, False
        datasets = [_FrameQueue(self.frames, w.args.batch, video.name, not video.frames, self.stop) for w in workers]
        decoder, writer = (threading.Thread(target=f, daemon=True) for f in (self._decode, self._write))
        helpers = [threading.Thread(target=self._helper, args=wd, daemon=True) for wd in zip(workers[1:], datasets[1:])]
        start = time.perf_counter()
        for thread in (decoder, writer, *helpers):
            thread.start()
        try:
            try:
                self._infer(workers[0], datasets[0])
            except KeyboardInterrupt:
                interrupted = True
                self.stop.set()
            except BaseException:
                self.abort = True
                self.stop.set()
                raise
        finally:
            for thread in helpers:
                thread.join()
            self.stop.set()
            decoder.join()
            self.results.put(None)
            writer.join()
            video.capture.release()
        if self.errors:
            raise self.errors[0]
        self.busy["inference"] = sum(d.busy - d.waited for d in datasets)
        return VideoSummary(
            video.name,
            self.outputs["video"].path,
            self.written,
            self.detections,
            time.perf_counter() - start,
            self.busy,
            video.frames,
            interrupted,
        )


def predict_video(predictor, source: str | int, out: str | Path, detections=None, mot=None) -> VideoSummary:
    """Annotate one video and write its outputs atomically (a partial but playable video after Ctrl-C).

    Args:
        predictor (BasePredictor): From load_predictor.
        source (str | int): A video file, webcam index or stream URL.
        out (str | Path): The annotated video (.mp4, .avi, ...): same frame count, fps and size as the source.
        detections (str | Path, optional): JSON lines, one per frame: ``{"frame": i, "boxes": [[x1, y1, x2, y2,
            score, class_id], ...]}`` in source pixels, plus ``"ids"`` (track ids) when tracking.
        mot (str | Path, optional): MOTChallenge rows ``frame,id,left,top,width,height,score,-1,-1,-1`` (tracking).

    Returns:
        (VideoSummary): What was written; ``truncated`` when fewer frames decoded than announced (a warning is logged).
    """
    if mot and predictor.args.mode != "track":
        raise VideoError(f"{mot}: MOT rows need track ids, load the predictor with a tracker")
    outputs = {"video": StagedFile(check_output(out))}
    video = open_video(source)
    outputs |= {k: StagedFile(v) for k, v in (("detections", detections), ("mot", mot)) if v}
    try:
        summary = _Run(predictor, video, outputs).run()
        if not summary.frames:  # Ctrl-C before the first frame was written: nothing to keep
            raise KeyboardInterrupt
    except BaseException:
        for staged in outputs.values():
            staged.discard()
        raise
    for staged in outputs.values():
        staged.commit()
    if summary.truncated:
        LOGGER.warning(
            f"{source}: decoded {summary.frames} of the {summary.announced} frames its container announces (truncated "
            f"or corrupt file); {summary.out} holds the {summary.frames} decoded frames"
        )
    return summary


def predict_source(predictor, source, out, detections=None, mot=None) -> list[VideoSummary | VideoError]:
    """Annotate a video file, webcam or stream, or each video of a folder (then ``out`` and the others are folders).

    A failing video of a folder is reported in the returned list and the next one runs; Ctrl-C stops after finalising
    the current video.

    Args:
        predictor (BasePredictor): From load_predictor.
        source (str | int | Path): A video file, a folder of videos, a webcam index or a stream URL.
        out (str | Path): The annotated video, or for a folder source the folder of ``<stem>.mp4`` outputs.
        detections (str | Path, optional): JSON lines file (or folder of ``<stem>.jsonl``), see predict_video.
        mot (str | Path, optional): MOT rows file (or folder of ``<stem>.txt``), see predict_video.

    Returns:
        (list[VideoSummary | VideoError]): One entry per video, in order.
    """
    videos = find_sources(source)
    if not Path(str(source)).is_dir():
        return [predict_video(predictor, videos[0], out, detections, mot)]
    if Path(out).suffix:
        raise VideoError(f"{out}: a folder source ({source}) writes one video per input, into a folder: give a folder")
    results = []
    for video in videos:
        stem = Path(video).stem
        paths = [Path(d) / f"{stem}{suffix}" if d else None for d, suffix in ((detections, ".jsonl"), (mot, ".txt"))]
        try:
            results.append(predict_video(predictor, video, Path(out) / f"{stem}.mp4", *paths))
        except VideoError as e:
            LOGGER.error(str(e))
            results.append(e)
            continue
        if results[-1].interrupted:
            break
    return results
