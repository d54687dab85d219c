"""Annotate videos, webcams or streams with a cspdet/ultralytics model: a .pt or its ONNX, OpenVINO, TorchScript export.

    cspdet video --model best.pt --source video.mp4 --out annotated.mp4 --detections detections.jsonl
    cspdet video --model best_openvino_model --source videos/ --out annotated/     # every video of a folder
    cspdet video --model best.onnx --source rtsp://camera/stream --out live.mp4   # live: drops frames to keep up
    cspdet video --model best.pt --source 0 --out cam.mp4 --track bytetrack --mot cam.txt   # webcam 0, tracked
    cspdet video --model best.onnx --source rtsp://cam1/s rtsp://cam2/s 0 --out recordings/  # three at once

Decoding, inference and encoding overlap; the output is H.264 (yuv420p) that browsers play, with the input's
timestamps (a variable frame rate stays variable) and its audio copied. Detections are those of `yolo predict` on the
same file. Several sources run at once through one model, each with its own outputs; one that fails or is lost never
stops the others. Webcams and stream URLs are live by default: frames that arrive while inference is busy are dropped,
keeping the newest; a live source that is lost is reopened with backoff (--reconnect), its recording going on in the
same file with the time it was away kept as a gap; and live recordings are crash-safe (--crash-safe): written in
place as fragmented MP4, they play while they grow and survive a crash but for the last second or two.

Exit status: 0 when every source was written, 1 when one failed or was lost for good (the message says why), 2 for a
usage error, 130 after Ctrl-C (pressed once or more, what was written so far is finalised and playable).
"""

from __future__ import annotations

import argparse

TRACKERS = ("bytetrack", "botsort")  # cspdet.video.backends.TRACKERS, without importing torch to parse


def add_arguments(parser):
    parser.add_argument("--model", required=True, help=".pt, .onnx, *_openvino_model/ or .torchscript")
    parser.add_argument(
        "--source", required=True, nargs="+", help="video files, webcams or stream URLs (at once), or a folder"
    )
    parser.add_argument("--out", required=True, nargs="+", help="annotated video per source, or a folder for them")
    parser.add_argument("--detections", nargs="+", help="JSON lines of per-frame boxes, per source or a folder")
    parser.add_argument("--mot", nargs="+", help="MOTChallenge rows (with --track), per source or a folder")
    parser.add_argument("--summary", help="JSON file of each source's summary (frames, gaps, CPU per stage, ...)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640], help="inference size: N, or H W")
    parser.add_argument("--conf", type=float, help="confidence threshold (default 0.25, 0.1 when tracking)")
    parser.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    parser.add_argument("--batch", type=int, help="frames per inference call (default 4 on CPU, 32 on CUDA)")
    parser.add_argument("--device", help="cpu, 0, ... (default: CUDA if available; CUDA runs in half precision)")
    parser.add_argument("--track", choices=TRACKERS, help="track objects with this ultralytics tracker")
    parser.add_argument("--codec", default="libx264", help="FFmpeg video encoder (default libx264: H.264)")
    parser.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        help="drop frames that arrive while inference is busy (default: on for webcams and stream URLs)",
    )
    parser.add_argument("--reconnect", type=float, metavar="SECONDS",
                        help="keep trying this long to reopen a lost stream or webcam (default: forever for live "
                             "sources, inf; 0: never)")  # fmt: skip
    parser.add_argument(
        "--crash-safe",
        action=argparse.BooleanOptionalAction,
        help="fragmented MP4 (Matroska clusters) and rows flushed frame by frame, playable after a crash (default: on "
        "for live sources, which are then written in place)",
    )


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    for problem, message in (
        (args.mot and not args.track, "--mot needs --track (MOT rows carry track ids)"),
        (len(args.imgsz) > 2, "--imgsz takes one size or two (height width)"),
        (args.reconnect is not None and args.reconnect < 0, "--reconnect takes seconds, 0 or more (inf: forever)"),
    ):
        if problem:
            print(f"cspdet video: error: {message}", file=sys.stderr)
            return 2

    from ultralytics.utils import LOGGER

    from cspdet.files import atomic_write
    from cspdet.video import VideoError, VideoSummary, check_output, find_sources, load_backend, predict_source
    from cspdet.video.predict import outputs

    folder = len(args.source) == 1 and Path(args.source[0]).is_dir()
    videos = [video for source in args.source for video in find_sources(source)]  # missing sources fail here
    for out in outputs(videos, args.out, ".mp4", folder):  # so do bad outputs, before the model loads
        check_output(out, args.codec)
    backend = load_backend(
        args.model,
        imgsz=args.imgsz[0] if len(args.imgsz) == 1 else args.imgsz,
        conf=args.conf,
        iou=args.iou,
        batch=args.batch,
        device=args.device,
        tracker=args.track,
    )
    results = predict_source(backend, args.source, args.out, args.detections, args.mot, args.codec, args.live,
                             args.reconnect, args.crash_safe)  # fmt: skip
    summaries = [r for r in results if isinstance(r, VideoSummary)]
    for result in results:
        if isinstance(result, VideoSummary):
            LOGGER.info(str(result))
        elif not folder:  # a folder's failures were reported as they came
            print(f"cspdet video: error: {result}", file=sys.stderr)
    if args.summary:
        rows = [r.as_dict() if isinstance(r, VideoSummary) else {"error": str(r)} for r in results]
        with atomic_write(args.summary) as file:
            json.dump(rows, file, indent=1)
    if any(s.interrupted for s in summaries):
        LOGGER.warning("interrupted: " + "; ".join(f"{s.out} holds the {s.frames} frames done" for s in summaries))
        return 130
    for summary in summaries:
        if summary.lost is not None:
            print(f"cspdet video: error: {summary.source}: lost for good after {summary.lost:.1f} s; {summary.out} "
                  f"holds its {summary.frames} frames", file=sys.stderr)  # fmt: skip
    failed = any(isinstance(r, VideoError) for r in results) or any(s.lost is not None for s in summaries)
    return 1 if failed else 0
