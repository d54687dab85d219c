"""Annotate videos, webcams or streams with a cspdet/ultralytics model: a .pt or its ONNX, OpenVINO, TorchScript export.

    cspdet video --model best.pt --source video.mp4 --out annotated.mp4 --detections detections.jsonl
    cspdet video --model best_openvino_model --source videos/ --out annotated/     # every video of a folder
    cspdet video --model best.onnx --source rtsp://camera/stream --out live.mp4   # live: drops frames to keep up
    cspdet video --model best.pt --source 0 --out cam.mp4 --track bytetrack --mot cam.txt   # webcam 0, tracked

Decoding, inference and encoding overlap; the output is H.264 (yuv420p, index first) that browsers play, with the
input's timestamps (a variable frame rate stays variable) and its audio copied. Detections are those of `yolo
predict` on the same file. Webcams and stream URLs are live by default: frames that arrive while inference is busy
are dropped, keeping the newest, and the summary gives the dropped count and the capture-to-written latency.

Exit status: 0 when every video was written, 1 when one failed (the message says why), 2 for a usage error, 130
after Ctrl-C (pressed once or more, the video written so far is finalised and playable).
"""

from __future__ import annotations

import argparse

TRACKERS = ("bytetrack", "botsort")  # cspdet.video.backends.TRACKERS, without importing torch to parse


def add_arguments(parser):
    parser.add_argument("--model", required=True, help=".pt, .onnx, *_openvino_model/ or .torchscript")
    parser.add_argument("--source", required=True, help="video file, folder of videos, webcam index or stream URL")
    parser.add_argument("--out", required=True, help="annotated video (.mp4, .m4v, .mov, .mkv, .webm), or a folder")
    parser.add_argument("--detections", help="JSON lines file of per-frame boxes and times (a folder for a folder)")
    parser.add_argument("--mot", help="MOTChallenge rows of the tracks (needs --track; a folder for a folder source)")
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


def run(args) -> int:
    import sys
    from pathlib import Path

    for problem, message in (
        (args.mot and not args.track, "--mot needs --track (MOT rows carry track ids)"),
        (len(args.imgsz) > 2, "--imgsz takes one size or two (height width)"),
    ):
        if problem:
            print(f"cspdet video: error: {message}", file=sys.stderr)
            return 2

    from ultralytics.utils import LOGGER

    from cspdet.video import VideoError, VideoSummary, check_output, find_sources, load_backend, predict_source

    find_sources(args.source)  # fail on a missing source or a bad output before loading the model
    if Path(args.out).suffix or not Path(args.source).is_dir():
        check_output(args.out, args.codec)
    backend = load_backend(
        args.model,
        imgsz=args.imgsz[0] if len(args.imgsz) == 1 else args.imgsz,
        conf=args.conf,
        iou=args.iou,
        batch=args.batch,
        device=args.device,
        tracker=args.track,
    )
    results = predict_source(backend, args.source, args.out, args.detections, args.mot, args.codec, args.live)
    for result in results:
        if isinstance(result, VideoSummary):
            LOGGER.info(str(result))
    if any(isinstance(r, VideoSummary) and r.interrupted for r in results):
        LOGGER.warning(f"interrupted: {results[-1].out} holds the {results[-1].frames} frames done before Ctrl-C")
        return 130
    return 1 if any(isinstance(r, VideoError) for r in results) else 0
