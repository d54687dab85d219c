"""Video inference against ``yolo predict``: a demo model, clips, timed commands, detection and timestamp checks.

``cspdet bench video`` uses these to time ``cspdet video`` and ``yolo predict ... save=True`` on the same clip and
model file, each run as a user runs it in a fresh process, interleaved.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.data.augment import LetterBox

from cspdet.research.report import Report, Table
from cspdet.video.detections import mismatched_frames, read_detections, read_yolo_labels

TIMED_FRAMES = 48  # frames whose inference inference_cost times

# Imports torch, ultralytics and (through its hook) cspdet, untimed, then runs the command from its entry point.
DRIVER = """
import sys, time
import ultralytics.cfg
command = sys.argv[1:]
sys.argv[:] = command  # in place: ultralytics keeps a reference to this list
start = time.perf_counter()
try:
    if command[0] == "yolo":
        ultralytics.cfg.entrypoint()
    else:
        from cspdet.cli import main
        code = main(command[1:])
        if code:
            raise SystemExit(code)
finally:
    print(f"timed: {time.perf_counter() - start:.3f} s", flush=True)
"""


def frames(video: str | Path, count: int | None = None):
    """Yield the first ``count`` (all when None) decoded frames of ``video`` as PyAV frames."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index == count:
                return
            yield frame


def demo_model(path: str | Path, video: str | Path, imgsz: int = 320, cfg: str = "csp_wrc-n.yaml", per_image: int = 8):
    """Save an untrained model that gives a few image-dependent detections per frame of ``video``.

    Freshly initialised weights shrink activations towards zero through the depth, so every anchor gets the same score.
    Setting the BatchNorm statistics from 16 letterboxed frames spread over ``video`` restores image-dependent outputs,
    and the class bias is then set so that in the median frame ``per_image`` anchors score above ultralytics' default
    confidence (0.25); NMS leaves fewer boxes. Whole frames still shift up or down, so a few frames get many boxes.
    The statistics depend on the input size: calibrate for each ``imgsz``.

    Args:
        path (str | Path): Output ``.pt``.
        video (str | Path): Video whose frames calibrate the model.
        imgsz (int): Inference size the model will be run at.
        cfg (str): Model YAML (cspdet or ultralytics).
        per_image (int): Anchors per frame to score above 0.25 before NMS.

    Returns:
        (Path): ``path``.
    """
    torch.manual_seed(0)
    model = YOLO(cfg)
    letterbox = LetterBox(imgsz, auto=True, stride=32)
    with av.open(str(video)) as container:
        step = max(1, container.streams.video[0].frames // 16)
    picked = [f for i, f in enumerate(frames(video, 16 * step)) if i % step == 0]
    images = np.stack([letterbox(image=f.to_ndarray(format="bgr24")) for f in picked])
    images = torch.from_numpy(images[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    net = model.model
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
    with torch.no_grad():
        net.train()(images)
        classifiers = [branch[-1] for branch in net.model[-1].cv3]
        for layer in classifiers:
            layer.bias.zero_()
        scores = net.eval()(images)[0][:, 4:].amax(1)  # (frames, anchors) best class score
        threshold = torch.logit(scores.topk(per_image, dim=1).values[:, -1]).median()
        for layer in classifiers:
            layer.bias.fill_(float(torch.logit(torch.tensor(0.25)) - threshold))
    torch.save({"model": net.half(), "train_args": {}}, path)  # a checkpoint as Model.save writes it (8.3.0 cannot)
    return Path(path)


def inference_cost(backend, video: str | Path, count: int = TIMED_FRAMES) -> float:
    """CPU milliseconds per frame that the model's runtime alone takes on ``video``'s first frames, called as ``cspdet
    video`` calls it in one worker (its threads, its batch, its letterboxed input): what any pipeline spends per frame
    at least, in CPU.

    Args:
        backend (Backend): The model loaded by ``load_backend``.
        video (str | Path): The clip whose letterboxed frames are the input.
        count (int): Frames to time, after one untimed call.
    """
    network = backend.predictors[0].model
    letterbox = LetterBox(backend.args.imgsz, auto=True, stride=int(network.stride))
    images = np.stack([letterbox(image=f.to_ndarray(format="bgr24")) for f in frames(video, backend.batch)])
    batch = torch.from_numpy(images[..., ::-1].transpose(0, 3, 1, 2).copy()).float() / 255
    calls = max(1, count // len(batch))
    with backend.threads_set(), torch.inference_mode():
        network(batch)  # the first call at a new shape sets up more than it runs
        start = time.process_time()
        for _ in range(calls):
            network(batch)
        return (time.process_time() - start) / (calls * len(batch)) * 1e3


def stage_floors(backend, video: str | Path, count: int | None = None) -> dict[str, float]:
    """CPU milliseconds per frame of each stage of ``cspdet video`` but the runtime, on ``video``'s frames through
    cspdet's own source, predictor and sinks, each batch taken through the stages one after the other in this thread
    (the runtime's inference between them, not counted): what the stages cost without the run's threads and queues.

    Args:
        backend (Backend): The model loaded by ``load_backend``.
        video (str | Path): The clip.
        count (int, optional): Frames to time (all when None).

    Returns:
        (dict): ``decode``, ``prepost``, ``drawing`` and ``encoding`` (STAGES less ``runtime``), and their ``sum``.
    """
    from cspdet.video.engine import STAGES, Feed, Lane, _Batches
    from cspdet.video.sinks import JsonLinesSink, VideoSink
    from cspdet.video.sources import open_source

    def batches(frames):
        feed = Feed([Lane(len(frames), len(frames), live=False)])
        for frame in frames:
            feed.put(0, frame)
        feed.end()
        return _Batches(feed, backend.batch, [str(video)], live=False)

    source, predictor = open_source(video, live=False), backend.predictors[0]
    frames, seconds, done = itertools.islice(source.read(), count), dict.fromkeys(STAGES, 0.0), 0
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack, backend.threads_set():
        stack.callback(source.close)
        sinks = [stack.enter_context(VideoSink(Path(folder, "floor.mp4"), source.info, backend.draw)),
                 stack.enter_context(JsonLinesSink(Path(folder, "floor.jsonl")))]  # fmt: skip
        while batch := list(itertools.islice(frames, backend.batch)):
            if not done:
                list(predictor.stream_inference(batches(batch)))  # set-up and first calls, untimed
            tick, runtime = time.thread_time(), predictor.runtime
            results = list(predictor.stream_inference(batches(batch)))
            tock = time.thread_time()
            seconds["prepost"] += tock - tick
            seconds["runtime"] += predictor.runtime - runtime
            prepared = [[sink.prepare(frame, result) for sink in sinks] for frame, result in zip(batch, results)]
            tick = time.thread_time()
            seconds["drawing"] += tick - tock
            for frame, outputs in zip(batch, prepared):
                for sink, output in zip(sinks, outputs):
                    sink.write(frame, output)
            seconds["encoding"] += time.thread_time() - tick
            done += len(batch)
        tick = time.thread_time()
        stack.close()  # the encoder flushed, the files finished
        seconds["encoding"] += time.thread_time() - tick
    seconds["decode"], seconds["prepost"] = source.busy, seconds["prepost"] - seconds.pop("runtime")
    floors = {stage: s / done * 1e3 for stage, s in seconds.items()}
    return {**floors, "sum": sum(floors.values())}


def cut_clip(video: str | Path, out: str | Path, count: int) -> Path:
    """Write the first ``count`` frames of ``video`` as H.264 with their timestamps (and no audio)."""
    with av.open(str(video)) as source, av.open(str(out), "w") as target:
        stream = source.streams.video[0]
        encoder = target.add_stream("libx264", rate=stream.average_rate, options={"preset": "veryfast", "crf": "18"})
        encoder.width, encoder.height, encoder.pix_fmt = stream.width, stream.height, "yuv420p"
        encoder.codec_context.time_base = encoder.time_base = stream.time_base
        for frame in frames(video, count):
            target.mux(encoder.encode(frame.reformat(format="yuv420p")))
        target.mux(encoder.encode(None))
    return Path(out)


def frame_size(video: str | Path) -> tuple[int, int]:
    """(width, height) of ``video``'s frames."""
    with av.open(str(video)) as container:
        return container.streams.video[0].width, container.streams.video[0].height


def timestamps(video: str | Path) -> tuple[str, str, list[Fraction]]:
    """(codec, pixel format, presentation time of every frame in seconds) of ``video``'s first video stream."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        times = [frame.pts * stream.time_base for frame in container.decode(stream)]
        return stream.codec_context.name, stream.codec_context.pix_fmt, times


def timed(command: list[str]) -> dict:
    """Run a ``yolo ...`` or ``cspdet ...`` command in a fresh process through DRIVER, sampling its memory.

    Returns:
        (dict): ``timed`` (seconds from the entry point on), ``wall``, ``cpu`` (seconds), ``memory`` (RSS MiB
            samples every 0.2 s) and ``output``; raises RuntimeError when the command fails.
    """
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", DRIVER, *command], stdout=log, stderr=subprocess.STDOUT)
        memory = []
        while not (ended := os.wait4(process.pid, os.WNOHANG))[0]:
            with contextlib.suppress(OSError, StopIteration):
                status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
                memory.append(int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024)
            time.sleep(0.2)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read()
    if code := os.waitstatus_to_exitcode(ended[1]):
        raise RuntimeError(f"{' '.join(command)} exited {code}:\n{output[-3000:]}")
    seconds = float(output.rsplit("timed: ", 1)[1].split()[0])
    return {"timed": seconds, "wall": wall, "cpu": ended[2].ru_utime + ended[2].ru_stime, "memory": memory or [0.0],
            "output": output}  # fmt: skip


def drawing_costs(model: str | Path, video: str | Path, imgsz: int, count: int = TIMED_FRAMES) -> dict[str, float]:
    """CPU milliseconds per frame of drawing the model's detections on ``count`` frames of ``video``, three ways:
    ultralytics' ``Results.plot`` (what ``yolo predict`` does), supervision's box and label annotators (when installed)
    and cspdet's BoxPainter, each in the same style (line width, font scale)."""
    from ultralytics.utils.plotting import Annotator

    from cspdet.video.draw import BoxPainter

    images = [f.to_ndarray(format="bgr24") for f in frames(video, count)]
    results = YOLO(model).predict([image.copy() for image in images], imgsz=imgsz, device="cpu", verbose=False)
    style = Annotator(images[0].copy())
    painter = BoxPainter(results[0].names, images[0].shape)

    def paint(result):
        data = result.boxes.data.numpy()
        painter(result.orig_img.copy(), data[:, :4], data[:, 5], data[:, 4])

    ways = {"ultralytics `Results.plot`": lambda result: result.plot(), "cspdet `BoxPainter`": paint}
    with contextlib.suppress(ImportError):
        import supervision as sv

        boxes, labels = (
            sv.BoxAnnotator(thickness=style.lw),
            sv.LabelAnnotator(text_scale=style.sf, text_thickness=style.tf),
        )

        def annotate(result):
            found = sv.Detections.from_ultralytics(result)
            texts = [f"{result.names[c]} {s:.2f}" for c, s in zip(found.class_id, found.confidence)]
            labels.annotate(boxes.annotate(result.orig_img.copy(), found), found, labels=texts)

        ways["supervision `BoxAnnotator` + `LabelAnnotator`"] = annotate
    costs = {}
    for name, way in ways.items():
        for result in results[:2]:
            way(result)  # caches and first calls
        start = time.thread_time()
        for result in results:
            way(result)
        costs[name] = (time.thread_time() - start) / len(results) * 1e3
    return costs


def video_report(
    video: str | Path,
    model: str | Path | None,
    sizes: list[int],
    formats: list[str],
    rounds: int,
    frames: int | None = None,
    folder: str | Path | None = None,
) -> Report:
    """``cspdet video`` against ``yolo predict ... save=True`` with the same model file and imgsz, per format, each
    command run as a user runs it, interleaved in a shuffled order each round; ``cspdet video``'s CPU per frame by
    stage, in the runs and in one thread (``stage_floors``); drawing three ways; outputs checked (``Report.ok``)."""
    import random
    import shutil
    import statistics

    from ultralytics.utils import TQDM
    from ultralytics.utils.torch_utils import get_cpu_info

    from cspdet.video import STAGES, load_backend

    work = Path(folder or tempfile.mkdtemp(prefix="bench_video_"))
    work.mkdir(parents=True, exist_ok=True)
    clip = Path(video)
    if frames:
        clip = cut_clip(clip, work / f"{clip.stem}-{frames}.mp4", frames)
    codec, pix_fmt, times = timestamps(clip)
    frames = len(times)

    commands, files, fresh = {}, {}, {}  # (imgsz, name) -> command, yolo's output folder; (imgsz, format) -> file
    for imgsz in sizes:
        folder = work / str(imgsz)
        folder.mkdir(exist_ok=True)
        best = folder / "best.pt"
        if model:
            shutil.copy(model, best)
        else:
            demo_model(best, clip, imgsz=imgsz)
        for fmt in formats:
            files[imgsz, fmt] = best if fmt == "pt" else YOLO(best).export(format=fmt, imgsz=imgsz, dynamic=True)
            name = Path(files[imgsz, fmt]).name
            out = ["--out", str(folder / f"{fmt}.mp4"), "--detections", str(folder / f"{fmt}.jsonl")]
            commands[imgsz, f"cspdet video {name}"] = ["cspdet", "video", "--model", str(files[imgsz, fmt]),
                "--source", str(clip), *out, "--summary", str(folder / f"{fmt}.json"), "--imgsz", str(imgsz),
                "--device", "cpu"]  # fmt: skip
            commands[imgsz, f"yolo predict {name}"] = ["yolo", "predict", f"model={files[imgsz, fmt]}",
                f"source={clip}", f"imgsz={imgsz}", "save=True", "save_txt=True", "save_conf=True", "device=cpu",
                f"project={folder}", f"name={fmt}", "exist_ok=True"]  # fmt: skip
            fresh[imgsz, f"yolo predict {name}"] = folder / fmt
        commands[imgsz, "reference"] = ["yolo", "predict", f"model={best}", f"source={clip}", f"imgsz={imgsz}",
                                        "save=True", "device=cpu", f"project={folder}", "name=reference",
                                        "exist_ok=True"]  # fmt: skip
        fresh[imgsz, "reference"] = folder / "reference"

    runs, rng, load = {key: [] for key in commands}, random.Random(0), [os.getloadavg()[0]]
    order = list(commands)
    for r in range(rounds):
        rng.shuffle(order)
        for key in TQDM(order, desc=f"round {r + 1}/{rounds}"):
            shutil.rmtree(fresh.get(key, work / "-"), ignore_errors=True)  # older releases append to label files
            runs[key].append(timed(commands[key]))
            if key[1].startswith("cspdet"):
                fmt = Path(commands[key][commands[key].index("--summary") + 1]).stem
                (row,) = json.loads((work / str(key[0]) / f"{fmt}.json").read_text())
                runs[key][-1]["stages"] = row["cpu_ms_per_frame"]
    load.append(os.getloadavg()[0])

    def fps(key):
        return [frames / run["timed"] for run in runs[key]]

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(fps(a), fps(b)))

    def met(ok):
        return "met" if ok else "missed"

    def stage(key, name):
        return statistics.median(run["stages"][name] for run in runs[key])

    tables, checks, equal, pipeline, serial, verdicts = [], [], [], [], [], []
    for imgsz in sizes:
        folder, rows, costs, floors, speedups, fastest = work / str(imgsz), [], [], [], [], 0.0
        reference = statistics.median(fps((imgsz, "reference")))
        for fmt in formats:
            name = Path(files[imgsz, fmt]).name
            ours, theirs = (imgsz, f"cspdet video {name}"), (imgsz, f"yolo predict {name}")
            detections = read_detections(folder / f"{fmt}.jsonl")
            labels = folder / fmt / "labels"
            expected = read_yolo_labels(labels, clip.stem, frames, frame_size(clip))
            mismatched = mismatched_frames(detections, expected)
            written = timestamps(folder / f"{fmt}.mp4")
            checks.append(written == ("h264", "yuv420p", times))
            equal.append(not mismatched)
            fastest = max(fastest, statistics.median(fps(ours)))
            backend = load_backend(files[imgsz, fmt], imgsz=imgsz, device="cpu")
            alone, floor = inference_cost(backend, clip), stage_floors(backend, clip)
            ceiling = os.cpu_count() * 1e3 / alone / statistics.median(fps(theirs))
            speedups.append(ratio(ours, theirs))
            rows.append([
                f"`{name}`", f"{statistics.median(fps(ours)):.1f}", f"{statistics.median(fps(theirs)):.1f}",
                f"{speedups[-1]:.2f}x", f"{ratio(ours, (imgsz, 'reference')):.2f}x",
                f"{frames - len(mismatched)}/{frames}", f"{sum(map(len, detections)) / frames:.1f}",
                f"{alone:.1f}", f"{ceiling:.2f}x",
            ])  # fmt: skip
            costs.append([f"`{name}`", *(f"{stage(ours, k):.2f}" for k in (*STAGES, "pipeline", "total"))])
            pipeline.append(stage(ours, "pipeline"))
            floors.append([f"`{name}`", *(f"{v:.2f}" for v in floor.values()), f"{pipeline[-1]:.2f}"])
            serial.append(floor["sum"])
        slowest = min(speedups)
        verdicts.append(f"at imgsz {imgsz}, every file >= 1.5x `yolo predict` with it: lowest {slowest:.2f}x "
                        f"({met(slowest >= 1.5)}); the fastest >= 3x `yolo predict model=best.pt imgsz={imgsz}`: "
                        f"{fastest / reference:.2f}x ({met(fastest / reference >= 3)})")  # fmt: skip
        rows.append([f"`yolo predict model=best.pt imgsz={imgsz} save=True`", "-", f"{reference:.1f}", "-", "1.00x",
                     *["-"] * 4])  # fmt: skip
        header = ["model file", "cspdet video frames/s", "yolo predict frames/s", "speed-up, same file",
                  "vs `yolo predict best.pt`", "frames with equal detections", "boxes/frame",
                  "runtime alone, CPU ms/frame", "ceiling, same file"]  # fmt: skip
        caption = f"**imgsz {imgsz}** (fastest: {fastest / reference:.2f}x `yolo predict model=best.pt imgsz={imgsz}`)"
        tables.append(Table(header, rows, caption))
        header = ["model file", *STAGES, "pipeline (all but the runtime)", "total"]
        tables.append(Table(header, costs, f"`cspdet video` at imgsz {imgsz}, CPU ms per frame by stage"))
        header = ["model file", *(k for k in STAGES if k != "runtime"), "sum", "pipeline in the run"]
        caption = f"The same stages in one thread at imgsz {imgsz}, batch after batch, CPU ms per frame"
        tables.append(Table(header, floors, caption))
    drawing = drawing_costs(files[sizes[0], "pt"], clip, sizes[0])
    tables.append(Table(["drawing", "CPU ms/frame"], [[k, f"{v:.2f}"] for k, v in drawing.items()],
                        f"Drawing the boxes of imgsz {sizes[0]} ({TIMED_FRAMES} frames)"))  # fmt: skip

    described = f"`{Path(model).name}`" if model else "an untrained csp_wrc-n calibrated on the clip per imgsz"
    body = (
        f"Clip: `{clip.name}`, {frames} frames of {'x'.join(map(str, frame_size(clip)))} ({codec}, {pix_fmt}); "
        f"model: {described}, exported with `yolo export format=F imgsz=N dynamic=True`. CPU: {get_cpu_info()} "
        f"({os.cpu_count()} cores), torch {torch.__version__}; load average {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end. {rounds} interleaved rounds, medians; frames/s from the command's entry "
        "point (model loading included, imports excluded). `cspdet video` writes H.264 (libx264 ultrafast, yuv420p, "
        "+faststart) and JSON lines; `yolo predict` writes MJPG .avi and label files (`save_txt=True "
        "save_conf=True`); the reference `yolo predict model=best.pt imgsz=N save=True` writes only its video, at "
        f"the same imgsz. Outputs of `cspdet video`: H.264 yuv420p with the input's {frames} timestamps in "
        f"{sum(checks)}/{len(checks)} runs checked. Runtime alone: the CPU per frame of the model's inference "
        "calls only, loaded as `cspdet video` loads it for one worker (its threads, its batch), timed in process on "
        f"{TIMED_FRAMES} letterboxed frames; ceiling: the speed-up over `yolo predict` with the same file that a "
        f"pipeline would reach if that inference were all it did, on all {os.cpu_count()} cores, from the first "
        "frame (no loading, decoding, NMS, drawing or encoding). Stages, from each run's `--summary`: CPU time per "
        "frame of the threads that decode (demux, decode, BGR), letterbox and NMS (`prepost`), run the model "
        "(`runtime`), draw (boxes, colour conversion, rows formatted) and encode; `pipeline` is the whole process's "
        f"CPU over the run less the runtime's (at most {max(pipeline):.2f} ms here), `total` all of it. The same "
        "stages in one thread: every frame of the clip through cspdet's own source, predictor and sinks in the "
        "process of the bench, each batch taken through decoding, inference (not counted), NMS, drawing and encoding "
        "in turn, with no other thread, queue or wait: what the stages cost without the run's concurrency, "
        f"{min(serial):.2f} to {max(serial):.2f} ms in all. Issue 21's targets, as measured in this run: `pipeline` "
        f"<= 3 CPU-ms per frame at 640x360 with H.264 output: {min(pipeline):.2f} to {max(pipeline):.2f} ms on this "
        f"{'x'.join(map(str, frame_size(clip)))} clip ({met(max(pipeline) <= 3)}); {'; '.join(verdicts)}."
    )
    return Report("video", "Video inference: cspdet video vs yolo predict", body, tables, ok=all(checks) and all(equal))
