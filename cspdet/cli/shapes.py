"""Write the synthetic shapes data: the COCO-format dataset, or a short video of the same objects.

    cspdet shapes dataset DIR [--train 800 --val 160 --size 160 --seed 0]
    cspdet shapes video OUT.mp4 [--frames 60 --width 320 --height 240 --fps 30 --seed 0]

The same arguments always give the same files. `data=shapes.yaml` generates the dataset by itself on first use; this
command writes it anywhere.
"""

from __future__ import annotations


def add_arguments(parser):
    what = parser.add_subparsers(dest="what", required=True)
    dataset = what.add_parser("dataset", help="COCO-format dataset folder: images/{train,val}, annotations/*.json")
    dataset.add_argument("root", help="folder to write (an existing, non-empty one is kept as it is)")
    dataset.add_argument("--train", type=int, default=800, help="training images")
    dataset.add_argument("--val", type=int, default=160, help="validation images")
    dataset.add_argument("--size", type=int, default=160, help="image width and height")
    video = what.add_parser("video", help="MP4 of shapes moving over a cluttered background")
    video.add_argument("path", help="MP4 file to write")
    video.add_argument("--frames", type=int, default=60)
    video.add_argument("--width", type=int, default=320)
    video.add_argument("--height", type=int, default=240)
    video.add_argument("--fps", type=float, default=30)
    for p in (dataset, video):
        p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from cspdet.data.shapes import write_dataset, write_video

    if args.what == "dataset":
        print(write_dataset(args.root, args.train, args.val, args.size, args.seed))
    else:
        print(write_video(args.path, args.frames, (args.width, args.height), args.fps, args.seed))
    return 0
