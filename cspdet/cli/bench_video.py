"""Video inference: `cspdet video` against `yolo predict ... save=True` on the same clip and model file, per backend.

For each inference size, the model (default: an untrained csp_wrc-n calibrated on the clip so that it detects, see
cspdet.research.video_bench.demo_model) is exported to each format with `yolo export ... dynamic=True` (frames keep
their aspect, as with the .pt). Every command runs as a user runs it, in a fresh process, all of them interleaved in
a shuffled order each round: `cspdet video` (H.264 output and JSON lines) and `yolo predict save=True save_txt=True`
(MJPG .avi and label files) for each model file, and the stock `yolo predict model=best.pt save=True` (no imgsz) as
the reference a user would otherwise run. Frames/s are measured from the command's entry point (model loading
included, the import of torch and ultralytics excluded); speed-ups are medians of the per-round ratios. The last
round's outputs are checked: detections equal (boxes within 1 px, scores within 1e-3) and videos that are H.264
yuv420p with the input's timestamps.

    cspdet bench video --video clip.mp4                          # imgsz 320 and 640, four formats, 3 rounds
    cspdet bench video --video clip.mp4 --frames 200 --rounds 1  # quick check
"""

from __future__ import annotations

FORMATS = ("pt", "onnx", "openvino", "torchscript")


def add_arguments(parser):
    parser.add_argument("--video", required=True, help="the clip to annotate")
    parser.add_argument("--model", help="a .pt (default: a demo model calibrated on the clip for each imgsz)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command, interleaved")
    parser.add_argument("--frames", type=int, help="use only the first N frames of the clip")
    parser.add_argument("--dir", help="work folder (default: a temporary one)")


def run(args, doc) -> int:
    import os
    import random
    import shutil
    import statistics
    import tempfile
    from pathlib import Path

    import torch
    from ultralytics import YOLO
    from ultralytics.utils import TQDM
    from ultralytics.utils.torch_utils import get_cpu_info

    from cspdet.research import video_bench as vb
    from cspdet.research.benchdoc import markdown_table, update_section

    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_video_"))
    work.mkdir(parents=True, exist_ok=True)
    clip = Path(args.video)
    if args.frames:
        clip = vb.cut_clip(clip, work / f"{clip.stem}-{args.frames}.mp4", args.frames)
    codec, pix_fmt, times = vb.timestamps(clip)
    frames = len(times)

    commands, files, fresh = {}, {}, {}  # (imgsz, name) -> command, yolo's output folder; (imgsz, format) -> file
    for imgsz in args.imgsz:
        folder = work / str(imgsz)
        folder.mkdir(exist_ok=True)
        best = folder / "best.pt"
        if args.model:
            shutil.copy(args.model, best)
        else:
            vb.demo_model(best, clip, imgsz=imgsz)
        for fmt in args.formats:
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
    for r in range(args.rounds):
        rng.shuffle(order)
        for key in TQDM(order, desc=f"round {r + 1}/{args.rounds}"):
            shutil.rmtree(fresh.get(key, work / "-"), ignore_errors=True)  # older releases append to label files
            runs[key].append(vb.timed(commands[key]))
    load.append(os.getloadavg()[0])

    def fps(key):
        return [frames / run["timed"] for run in runs[key]]

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(fps(a), fps(b)))

    sections, checks, equal = [], [], []
    for imgsz in args.imgsz:
        folder, rows, fastest = work / str(imgsz), [], 0.0
        for fmt in args.formats:
            name = Path(files[imgsz, fmt]).name
            ours, theirs = (imgsz, f"cspdet video {name}"), (imgsz, f"yolo predict {name}")
            detections = vb.read_detections(folder / f"{fmt}.jsonl")
            labels = folder / fmt / "labels"
            expected = vb.read_yolo_labels(labels, clip.stem, frames, vb.frame_size(clip))
            mismatched = vb.mismatched_frames(detections, expected)
            video = vb.timestamps(folder / f"{fmt}.mp4")
            checks.append(video == ("h264", "yuv420p", times))
            equal.append(not mismatched)
            fastest = max(fastest, statistics.median(fps(ours)))
            alone = vb.inference_cost(files[imgsz, fmt], clip, imgsz)
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
        sections.append(
            f"**imgsz {imgsz}** (fastest: {fastest / stock:.2f}x the stock command)\n\n{markdown_table(header, rows)}"
        )

    model = f"`{Path(args.model).name}`" if args.model else "an untrained csp_wrc-n calibrated on the clip per imgsz"
    body = (
        f"Clip: `{clip.name}`, {frames} frames of {'x'.join(map(str, vb.frame_size(clip)))} ({codec}, {pix_fmt}); "
        f"model: {model}, exported with `yolo export format=F imgsz=N dynamic=True`. CPU: {get_cpu_info()} "
        f"({os.cpu_count()} cores), torch {torch.__version__}; load average {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end. {args.rounds} interleaved rounds, medians; frames/s from the command's entry "
        "point (model loading included, imports excluded). `cspdet video` writes H.264 (libx264 ultrafast, yuv420p, "
        "+faststart) and JSON lines; `yolo predict` writes MJPG .avi and label files (`save_txt=True "
        "save_conf=True`); the stock reference writes only its video, at its default imgsz (640). "
        f"Outputs of `cspdet video`: H.264 yuv420p with the input's {frames} timestamps in "
        f"{sum(checks)}/{len(checks)} runs checked. Runtime alone: the CPU per frame of the model's inference "
        "calls only, loaded as `cspdet video` loads it for one worker (its threads, its batch), timed in process on "
        f"{vb.TIMED_FRAMES} letterboxed frames; ceiling: the speed-up over `yolo predict` with the same file that a "
        f"pipeline would reach if that inference were all it did, on all {os.cpu_count()} cores, from the first "
        "frame (no loading, decoding, NMS, drawing or encoding).\n\n" + "\n\n".join(sections)
    )
    print(body)
    if doc:
        update_section(doc, "video", "Video inference: cspdet video vs yolo predict", body)
    return 0 if all(checks) and all(equal) else 1
