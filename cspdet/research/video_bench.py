"""Video inference against ``yolo predict``: a demo model, clips, timed commands, detection and timestamp checks.

``cspdet bench video`` uses these to time ``cspdet video`` and ``yolo predict ... save=True`` on the same clip and
model file, each run as a user runs it in a fresh process, interleaved.
"""

from __future__ import annotations

import contextlib
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


def inference_cost(model: str | Path, video: str | Path, imgsz: int, count: int = TIMED_FRAMES) -> float:
    """CPU milliseconds per frame that the model's runtime alone takes on ``video``'s first frames, loaded, threaded
    and batched as ``cspdet video`` loads it for one worker: what any pipeline spends per frame at least, in CPU.

    Args:
        model (str | Path): A ``.pt`` or an export.
        video (str | Path): The clip whose letterboxed frames are the input.
        imgsz (int): Inference size.
        count (int): Frames to time, after one untimed call.
    """
    from cspdet.video import load_backend

    backend = load_backend(model, imgsz=imgsz, device="cpu")
    network = backend.predictors[0].model
    letterbox = LetterBox(imgsz, auto=True, stride=int(network.stride))
    images = np.stack([letterbox(image=f.to_ndarray(format="bgr24")) for f in frames(video, backend.batch)])
    batch = torch.from_numpy(images[..., ::-1].transpose(0, 3, 1, 2).copy()).float() / 255
    calls = max(1, count // len(batch))
    with backend.threads_set(), torch.inference_mode():
        network(batch)  # the first call at a new shape sets up more than it runs
        start = time.process_time()
        for _ in range(calls):
            network(batch)
        return (time.process_time() - start) / (calls * len(batch)) * 1e3


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


def read_detections(path: str | Path) -> list[np.ndarray]:
    """Read a detections JSON lines file into one (N, 6) array [x1, y1, x2, y2, score, class] per frame."""
    return [np.array(json.loads(line)["boxes"], float).reshape(-1, 6) for line in Path(path).read_text().splitlines()]


def read_yolo_labels(folder: str | Path, stem: str, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Read ``yolo predict save_txt=True save_conf=True`` labels of a video into per-frame (N, 6) pixel arrays.

    Args:
        folder (str | Path): The ``labels`` folder, holding ``<stem>_<frame>.txt`` for frames 1.. with boxes.
        stem (str): Video file stem.
        frames (int): Frames in the video.
        size (tuple[int, int]): Frame (width, height).
    """
    width, height = size
    out = []
    for frame in range(1, frames + 1):
        file = Path(folder) / f"{stem}_{frame}.txt"
        rows = np.loadtxt(file, ndmin=2) if file.exists() else np.zeros((0, 6))
        cls, xc, yc, w, h, score = (rows[:, i] for i in range(6))
        xyxy = np.stack([(xc - w / 2) * width, (yc - h / 2) * height, (xc + w / 2) * width, (yc + h / 2) * height], 1)
        out.append(np.concatenate([xyxy, score[:, None], cls[:, None]], 1))
    return out


def same_detections(a: np.ndarray, b: np.ndarray, pixels: float = 1.0, score: float = 1e-3) -> bool:
    """Whether two (N, 6) detection sets pair one to one with the same class, boxes within ``pixels``, scores within
    ``score``.
    """
    if len(a) != len(b):
        return False
    free = np.ones(len(b), bool)
    for box in a:
        close = (np.abs(b[:, :4] - box[:4]).max(1) <= pixels) & (np.abs(b[:, 4] - box[4]) <= score)
        match = np.flatnonzero(free & close & (b[:, 5] == box[5]))
        if not len(match):
            return False
        free[match[0]] = False
    return True


def mismatched_frames(a: list[np.ndarray], b: list[np.ndarray], **tolerances) -> list[int]:
    """Indices of the frames whose detections differ (see same_detections); frames missing from one side count."""
    n = max(len(a), len(b))
    return [i for i in range(n) if i >= len(a) or i >= len(b) or not same_detections(a[i], b[i], **tolerances)]


def yolo_predict_detections(model: str | Path, video: str | Path, imgsz: int, project: str | Path) -> list:
    """Detections of ``yolo predict`` (stock CLI, batch 1) on ``video``, read back from its save_txt labels."""
    yolo = str(Path(sys.executable).with_name("yolo"))
    args = [yolo, "predict", f"model={model}", f"source={video}", f"imgsz={imgsz}", "save=False", "save_txt=True"]
    args += ["save_conf=True", "device=cpu", f"project={Path(project).resolve()}", "name=labels", "exist_ok=True"]
    args += ["verbose=False"]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr}")
    count = sum(1 for _ in frames(video))
    return read_yolo_labels(Path(project) / "labels" / "labels", Path(video).stem, count, frame_size(video))


def video_report(
    video: str | Path,
    model: str | Path | None,
    sizes: list[int],
    formats: list[str],
    rounds: int,
    frames: int | None = None,
    folder: str | Path | None = None,
) -> Report:
    """``cspdet video`` against ``yolo predict ... save=True`` with the same model file, per format and imgsz, each
    command run as a user runs it, interleaved in a shuffled order each round; outputs checked (``Report.ok``)."""
    import random
    import shutil
    import statistics

    from ultralytics.utils import TQDM
    from ultralytics.utils.torch_utils import get_cpu_info

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
                "--source", str(clip), *out, "--imgsz", str(imgsz), "--device", "cpu"]  # fmt: skip
            commands[imgsz, f"yolo predict {name}"] = ["yolo", "predict", f"model={files[imgsz, fmt]}",
                f"source={clip}", f"imgsz={imgsz}", "save=True", "save_txt=True", "save_conf=True", "device=cpu",
                f"project={folder}", f"name={fmt}", "exist_ok=True"]  # fmt: skip
            fresh[imgsz, f"yolo predict {name}"] = folder / fmt
        commands[imgsz, "stock"] = ["yolo", "predict", f"model={best}", f"source={clip}", "save=True", "device=cpu",
                                    f"project={folder}", "name=stock", "exist_ok=True"]  # fmt: skip
        fresh[imgsz, "stock"] = folder / "stock"

    runs, rng, load = {key: [] for key in commands}, random.Random(0), [os.getloadavg()[0]]
    order = list(commands)
    for r in range(rounds):
        rng.shuffle(order)
        for key in TQDM(order, desc=f"round {r + 1}/{rounds}"):
            shutil.rmtree(fresh.get(key, work / "-"), ignore_errors=True)  # older releases append to label files
            runs[key].append(timed(commands[key]))
    load.append(os.getloadavg()[0])

    def fps(key):
        return [frames / run["timed"] for run in runs[key]]

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(fps(a), fps(b)))

    sections, checks, equal = [], [], []
    for imgsz in sizes:
        folder, rows, fastest = work / str(imgsz), [], 0.0
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
            alone = inference_cost(files[imgsz, fmt], clip, imgsz)
            ceiling = os.cpu_count() * 1e3 / alone / statistics.median(fps(theirs))
            rows.append([
                f"`{name}`", f"{statistics.median(fps(ours)):.1f}", f"{statistics.median(fps(theirs)):.1f}",
                f"{ratio(ours, theirs):.2f}x", f"{ratio(ours, (imgsz, 'stock')):.2f}x",
                f"{statistics.median(r['cpu'] for r in runs[ours]):.0f} / "
                f"{statistics.median(r['cpu'] for r in runs[theirs]):.0f}",
                f"{frames - len(mismatched)}/{frames}", f"{sum(map(len, detections)) / frames:.1f}",
                f"{alone:.1f}", f"{ceiling:.2f}x",
            ])  # fmt: skip
        stock = statistics.median(fps((imgsz, "stock")))
        rows.append(["stock `yolo predict model=best.pt save=True`", "-", f"{stock:.1f}", "-", "1.00x",
                     f"- / {statistics.median(r['cpu'] for r in runs[imgsz, 'stock']):.0f}", *["-"] * 4])  # fmt: skip
        header = ["model file", "cspdet video frames/s", "yolo predict frames/s", "speed-up, same file",
                  "vs stock", "CPU s (cspdet / yolo)", "frames with equal detections", "boxes/frame",
                  "runtime alone, CPU ms/frame", "ceiling, same file"]  # fmt: skip
        sections.append(Table(header, rows, f"**imgsz {imgsz}** (fastest: {fastest / stock:.2f}x the stock command)"))

    described = f"`{Path(model).name}`" if model else "an untrained csp_wrc-n calibrated on the clip per imgsz"
    body = (
        f"Clip: `{clip.name}`, {frames} frames of {'x'.join(map(str, frame_size(clip)))} ({codec}, {pix_fmt}); "
        f"model: {described}, exported with `yolo export format=F imgsz=N dynamic=True`. CPU: {get_cpu_info()} "
        f"({os.cpu_count()} cores), torch {torch.__version__}; load average {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end. {rounds} interleaved rounds, medians; frames/s from the command's entry "
        "point (model loading included, imports excluded). `cspdet video` writes H.264 (libx264 ultrafast, yuv420p, "
        "+faststart) and JSON lines; `yolo predict` writes MJPG .avi and label files (`save_txt=True "
        "save_conf=True`); the stock reference writes only its video, at its default imgsz (640). "
        f"Outputs of `cspdet video`: H.264 yuv420p with the input's {frames} timestamps in "
        f"{sum(checks)}/{len(checks)} runs checked. Runtime alone: the CPU per frame of the model's inference "
        "calls only, loaded as `cspdet video` loads it for one worker (its threads, its batch), timed in process on "
        f"{TIMED_FRAMES} letterboxed frames; ceiling: the speed-up over `yolo predict` with the same file that a "
        f"pipeline would reach if that inference were all it did, on all {os.cpu_count()} cores, from the first "
        "frame (no loading, decoding, NMS, drawing or encoding)."
    )
    return Report(
        "video", "Video inference: cspdet video vs yolo predict", body, sections, ok=all(checks) and all(equal)
    )
