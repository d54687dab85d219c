"""Write the synthetic shapes data: a COCO-format dataset folder or a short MP4 video.

python tools/make_shapes.py dataset /tmp/shapes --train 800 --val 160 --size 160
python tools/make_shapes.py video /tmp/shapes.mp4 --frames 60 --width 320 --height 240
"""

from __future__ import annotations

import argparse

from cspdet.data.shapes import write_dataset, write_video


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    dataset = sub.add_parser("dataset", help="COCO-format dataset folder (kept if it exists)")
    dataset.add_argument("root")
    dataset.add_argument("--train", type=int, default=800)
    dataset.add_argument("--val", type=int, default=160)
    dataset.add_argument("--size", type=int, default=160)
    video = sub.add_parser("video", help="MP4 of shapes moving over a cluttered background")
    video.add_argument("path")
    video.add_argument("--frames", type=int, default=60)
    video.add_argument("--width", type=int, default=320)
    video.add_argument("--height", type=int, default=240)
    video.add_argument("--fps", type=float, default=30)
    for p in (dataset, video):
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.what == "dataset":
        print(write_dataset(args.root, args.train, args.val, args.size, args.seed))
    else:
        print(write_video(args.path, args.frames, (args.width, args.height), args.fps, args.seed))


if __name__ == "__main__":
    main()
