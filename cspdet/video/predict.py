"""Annotate a video, a folder of videos, a webcam or a stream: open the source and the outputs, run the engine, and
move the outputs into place (or delete them when nothing was written).
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.utils import LOGGER

from cspdet.video.engine import Run, VideoSummary, ctrl_c_calls
from cspdet.video.sinks import DEFAULT_CODEC, JsonLinesSink, MotSink, VideoSink, check_output
from cspdet.video.sources import VideoError, find_sources, open_source


def predict_video(
    backend,
    source: str | int,
    out: str | Path,
    detections: str | Path | None = None,
    mot: str | Path | None = None,
    codec: str = DEFAULT_CODEC,
    live: bool | None = None,
) -> VideoSummary:
    """Annotate one video, webcam or stream and write its outputs atomically (playable after Ctrl-C).

    Args:
        backend (Backend): From load_backend.
        source (str | int): A video file, webcam index or stream URL.
        out (str | Path): The annotated video (.mp4, .m4v, .mov, .mkv, .webm): the input's frames (live: those
            kept), size and timestamps, boxes drawn as ``yolo predict`` draws them, the input's audio copied.
        detections (str | Path, optional): JSON lines, one per frame: ``{"frame": i, "t": seconds, "boxes": [[x1,
            y1, x2, y2, score, class_id], ...]}`` in source pixels, plus ``"ids"`` (track ids) when tracking.
        mot (str | Path, optional): MOTChallenge rows ``frame,id,left,top,width,height,score,-1,-1,-1`` (tracking).
        codec (str): FFmpeg video encoder; H.264 (``libx264``, ``yuv420p``) plays in browsers.
        live (bool, optional): Drop the frames that arrive while inference is busy, keeping the newest (bounded
            latency); default: on for webcams and stream URLs, off for files.

    Returns:
        (VideoSummary): What was written; ``truncated`` when fewer frames decoded than announced (a warning is logged).

    Examples:
        >>> backend = load_backend("best.pt", imgsz=640)
        >>> summary = predict_video(backend, "video.mp4", "annotated.mp4", detections="detections.jsonl")
        >>> summary.frames, summary.fps
        (1189, 41.5)
    """
    if mot and not backend.tracking:
        raise VideoError(f"{mot}: MOT rows need track ids, load the backend with a tracker")
    check_output(out, codec)
    opened, sinks = open_source(source, live), []
    try:
        sinks.append(VideoSink(out, opened, backend.draw, codec))
        sinks += [sink(path) for sink, path in ((JsonLinesSink, detections), (MotSink, mot)) if path]
    except BaseException:
        opened.close()  # once it runs, the engine closes it
        for sink in sinks:
            sink.discard()
        raise
    if hint := backend.padding_hint(opened.size):
        LOGGER.warning(hint)
    run = Run(backend, opened, sinks, on_audio=sinks[0].add_audio)
    with ctrl_c_calls(run.stop):  # until the outputs are in place, Ctrl-C (once or more) stops the run, no more
        try:
            summary = run.run()
            if not summary.frames:  # Ctrl-C before the first frame was written: nothing to keep
                raise KeyboardInterrupt
        except BaseException:
            for sink in sinks:
                sink.discard()
            raise
        for sink in sinks:
            sink.commit()
    if summary.truncated:
        LOGGER.warning(
            f"{source}: decoded {summary.frames} of the {summary.announced} frames its container announces (truncated "
            f"or corrupt file); {summary.out} holds the {summary.frames} decoded frames"
        )
    return summary


def predict_source(backend, source, out, detections=None, mot=None, codec=DEFAULT_CODEC, live=None) -> list:
    """Annotate a video file, webcam or stream, or each video of a folder (then ``out`` and the others are folders).

    A failing video of a folder is reported in the returned list and the next one runs; Ctrl-C stops after finalising
    the current video.

    Args:
        backend (Backend): From load_backend.
        source (str | int | Path): A video file, a folder of videos, a webcam index or a stream URL.
        out (str | Path): The annotated video, or for a folder source the folder of ``<stem>.mp4`` outputs.
        detections (str | Path, optional): JSON lines file (or folder of ``<stem>.jsonl``), see predict_video.
        mot (str | Path, optional): MOT rows file (or folder of ``<stem>.txt``), see predict_video.
        codec (str): FFmpeg video encoder, see predict_video.
        live (bool, optional): See predict_video.

    Returns:
        (list[VideoSummary | VideoError]): One entry per video, in order.
    """
    videos = find_sources(source)
    if not Path(str(source)).is_dir():
        return [predict_video(backend, videos[0], out, detections, mot, codec, live)]
    if Path(out).suffix:
        raise VideoError(f"{out}: a folder source ({source}) writes one video per input, into a folder: give a folder")
    results = []
    for video in videos:
        stem = Path(video).stem
        paths = [Path(d) / f"{stem}{suffix}" if d else None for d, suffix in ((detections, ".jsonl"), (mot, ".txt"))]
        try:
            results.append(predict_video(backend, video, Path(out) / f"{stem}.mp4", *paths, codec=codec, live=live))
        except VideoError as e:
            LOGGER.error(str(e))
            results.append(e)
            continue
        if results[-1].interrupted:
            break
    return results
