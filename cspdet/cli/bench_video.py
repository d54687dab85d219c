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


def reports(args) -> list:
    from cspdet.research.video_bench import video_report

    return [video_report(args.video, args.model, args.imgsz, args.formats, args.rounds, args.frames, args.dir)]
