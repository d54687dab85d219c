"""Annotate videos with an ultralytics/cspdet model: threaded decoding, batched inference, threaded drawing/encoding.

Usage:
    python tools/video_infer.py --model best.pt --source video.mp4 --out annotated.mp4 --detections dets.jsonl
    python tools/video_infer.py --model best.onnx --source videos/ --out annotated/          # every video of a folder
    python tools/video_infer.py --model best.pt --source 0 --out cam.mp4 --track bytetrack --mot cam.txt  # webcam 0

Exit status: 0 when every video was written, 1 when one failed (the message says why), 130 after Ctrl-C (the video
written so far is kept and playable).
"""

from __future__ import annotations

import argparse
import sys

TRACKERS = ("bytetrack", "botsort")  # cspdet.video.pipeline.TRACKERS, without importing torch to parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="cspdet/ultralytics .pt, or its export (.onnx, ...)")
    parser.add_argument("--source", required=True, help="video file, folder of videos, webcam index or stream URL")
    parser.add_argument("--out", required=True, help="annotated video (.mp4, .avi, ...), or a folder for a folder")
    parser.add_argument("--detections", help="JSON lines file of per-frame boxes (a folder for a folder source)")
    parser.add_argument("--mot", help="MOTChallenge rows of the tracks (needs --track; a folder for a folder source)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640], help="inference size: N, or H W")
    parser.add_argument("--conf", type=float, help="confidence threshold (default 0.25, 0.1 when tracking)")
    parser.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    parser.add_argument("--batch", type=int, help="frames per inference batch (default 4 on CPU, 32 on CUDA)")
    parser.add_argument("--device", help="cpu, 0, 0,1, ... (default: CUDA if available; CUDA runs in half precision)")
    parser.add_argument("--track", choices=TRACKERS, help="track objects with this ultralytics tracker")
    args = parser.parse_args(argv)
    if args.mot and not args.track:
        parser.error("--mot needs --track (MOT rows carry track ids)")
    if len(args.imgsz) > 2:
        parser.error("--imgsz takes one size or two (height width)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline on the source and print one summary line per video; return the exit status."""
    args = parse_args(argv)
    from ultralytics.utils import LOGGER  # after parsing: --help and usage errors need no torch

    from cspdet.video import VideoError, VideoSummary, find_sources, load_predictor, predict_source

    try:
        find_sources(args.source)  # fail on a missing source before loading the model
        predictor = load_predictor(
            args.model,
            imgsz=args.imgsz[0] if len(args.imgsz) == 1 else args.imgsz,
            conf=args.conf,
            iou=args.iou,
            batch=args.batch,
            device=args.device,
            tracker=args.track,
        )
        results = predict_source(predictor, args.source, args.out, args.detections, args.mot)
    except VideoError as e:
        LOGGER.error(str(e))
        return 1
    except KeyboardInterrupt:
        LOGGER.warning("interrupted before a frame of the current video was written")
        return 130
    for result in results:
        if isinstance(result, VideoSummary):
            LOGGER.info(str(result))
    if any(isinstance(r, VideoSummary) and r.interrupted for r in results):
        LOGGER.warning(f"interrupted: {results[-1].out} holds the {results[-1].frames} frames done before Ctrl-C")
        return 130
    return 1 if any(isinstance(r, VideoError) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
