"""Annotate videos, folders of videos, webcams and streams: open the sources and their outputs, run the engine on all of
them at once, and report each source's summary.
"""

from __future__ import annotations

import contextlib
import re
from concurrent.futures import ThreadPoolExecutor
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
    reconnect: float | None = None,
    crash_safe: bool | None = None,
) -> VideoSummary:
    """Annotate one video, webcam or stream (see predict_videos); raise the VideoError that ends it."""
    summary = predict_videos(backend, [source], [out], [detections], [mot], codec, live, reconnect, crash_safe)[0]
    if isinstance(summary, VideoError):
        raise summary
    return summary


def predict_videos(
    backend,
    sources: list[str | int],
    outs: list[str | Path],
    detections: list[str | Path | None] | None = None,
    mots: list[str | Path | None] | None = None,
    codec: str = DEFAULT_CODEC,
    live: bool | None = None,
    reconnect: float | None = None,
    crash_safe: bool | None = None,
) -> list[VideoSummary | VideoError]:
    """Annotate videos, webcams and streams at once through one model, each into its own outputs.

    Frames of all sources are batched together; each source keeps its own timestamps, outputs and reconnection, and
    one that fails or is lost ends alone. Ctrl-C, once or more, stops every source and finalises what was written.

    Args:
        backend (Backend): From load_backend.
        sources (list[str | int]): Video files, webcam indices or stream URLs.
        outs (list[str | Path]): Each source's annotated video (.mp4, .m4v, .mov, .mkv, .webm): the input's frames
            (live: those kept), size and timestamps, boxes drawn as ``yolo predict`` draws them, the input's audio.
        detections (list[str | Path | None], optional): Each source's JSON lines, one per frame: ``{"frame": i, "t":
            seconds, "boxes": [[x1, y1, x2, y2, score, class_id], ...]}`` in source pixels, plus ``"ids"`` (track ids)
            when tracking and ``"gap": {"start": s, "length": s}`` on the first frame after a live source came back.
        mots (list[str | Path | None], optional): Each source's MOTChallenge rows (tracking).
        codec (str): FFmpeg video encoder; H.264 (``libx264``, ``yuv420p``) plays in browsers.
        live (bool, optional): Drop the frames that arrive while inference is busy, keeping the newest (bounded
            latency); default: on for webcams and stream URLs, off for files.
        reconnect (float, optional): Seconds to keep trying to reopen a lost stream or webcam (``math.inf``: forever,
            0: never); default: forever for live sources.
        crash_safe (bool, optional): Write outputs that survive a crash: fragmented MP4 (or Matroska clusters) of a
            second at most and rows flushed frame by frame; a live source's outputs are then written in place (they
            play while they grow), a file's still go to a hidden temporary file moved into place at the end. Default:
            on for live sources.

    Returns:
        (list[VideoSummary | VideoError]): Per source: what was written, or why nothing was.

    Examples:
        >>> backend = load_backend("best.pt", imgsz=640)
        >>> summary = predict_video(backend, "video.mp4", "annotated.mp4", detections="detections.jsonl")
        >>> summary.frames, summary.fps
        (1189, 41.5)
        >>> predict_videos(backend, ["rtsp://cam1/stream", "rtsp://cam2/stream"], ["cam1.mp4", "cam2.mp4"])
    """
    count = len(sources)
    detections, mots = detections or [None] * count, mots or [None] * count
    if any(mots) and not backend.tracking:
        raise VideoError(f"{next(m for m in mots if m)}: MOT rows need track ids, load the backend with a tracker")
    for out in outs:
        check_output(out, codec)
    with ThreadPoolExecutor(max(count, 1)) as pool:  # streams may take seconds each to answer
        opened = list(pool.map(lambda s: _open(s, live, reconnect), sources))
    ready = [source for source in opened if not isinstance(source, VideoError)]
    with contextlib.ExitStack() as opened_here:  # closes the sources if their outputs cannot be set up
        for source in ready:
            opened_here.callback(source.close)
        sinks = [_sinks(backend, s, *paths, codec, crash_safe) for s, *paths in zip(opened, outs, detections, mots)
                 if not isinstance(s, VideoError)]  # fmt: skip
        opened_here.pop_all()  # from here on the run closes them
    for source in ready:
        if hint := backend.padding_hint(source.info.size):
            LOGGER.warning(hint)
    if ready:
        run = Run(backend, ready, sinks)
        with ctrl_c_calls(run.stop):  # until the outputs are in place, Ctrl-C (once or more) stops the run, no more
            results = iter(run.run())
    summaries = [source if isinstance(source, VideoError) else next(results) for source in opened]
    for summary in summaries:
        if isinstance(summary, VideoSummary) and summary.truncated:
            LOGGER.warning(
                f"{summary.source}: decoded {summary.announced - summary.undecodable} of the {summary.announced} "
                f"frames its container announces (truncated or corrupt file); {summary.out} holds those frames"
            )
    return summaries


def _open(source, live, reconnect):
    """The opened source, or the VideoError saying why it cannot be."""
    try:
        return open_source(source, live, reconnect)
    except VideoError as e:
        return e


def _sinks(backend, source, out, detections, mot, codec, crash_safe) -> list:
    """A source's outputs: the annotated video first, then its rows."""
    safe = source.live if crash_safe is None else crash_safe
    in_place = safe and source.live  # a recording plays while it grows; a file's outputs appear when complete
    sinks = [VideoSink(out, source.info, backend.draw, codec, source.audio, safe, in_place, source.name)]
    sinks += [sink(path, safe, in_place) for sink, path in ((JsonLinesSink, detections), (MotSink, mot)) if path]
    return sinks


def source_names(sources: list[str]) -> list[str]:
    """A file name stem for each source's outputs in a shared folder: a file's stem, ``webcam0``, a URL's last path
    part (or host); repeated ones numbered."""
    names, seen = [], {}
    for source in sources:
        text = str(source)
        if text.isdigit():
            name = f"webcam{text}"
        elif "://" in text:
            rest = text.split("://", 1)[1].split("?")[0].rstrip("/")
            name = Path(rest).stem if "/" in rest else rest
        else:
            name = Path(text).stem
        name = re.sub(r"[^\w.-]+", "_", name) or "source"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


def predict_source(backend, source, out, detections=None, mot=None, codec=DEFAULT_CODEC, live=None, reconnect=None,
                   crash_safe=None) -> list:  # fmt: skip
    """Annotate videos, webcams or streams at once, or each video of a folder in turn.

    Args:
        backend (Backend): From load_backend.
        source (str | int | Path | list): A video file, a webcam index, a stream URL, a list of them (run at once), or
            a folder of videos (run one after another; a failing one is reported and the next runs).
        out (str | Path | list): The annotated video, one per source, or a folder (no suffix) that gets
            ``<name>.mp4`` for each source (see source_names).
        detections (str | Path | list, optional): JSON lines files likewise (a folder gets ``<name>.jsonl``).
        mot (str | Path | list, optional): MOT rows files likewise (a folder gets ``<name>.txt``).
        codec, live, reconnect, crash_safe: See predict_videos.

    Returns:
        (list[VideoSummary | VideoError]): One entry per video, in order.
    """
    given = [str(s) for s in source] if isinstance(source, (list, tuple)) else [str(source)]
    folder = len(given) == 1 and Path(given[0]).is_dir()
    if not folder and any(Path(s).is_dir() for s in given):
        raise VideoError(f"{next(s for s in given if Path(s).is_dir())}: a folder runs its videos one after another; "
                         "give it as the only --source")  # fmt: skip
    videos = find_sources(given[0]) if folder else [v for s in given for v in find_sources(s)]
    paths = [outputs(videos, value, suffix, folder) for value, suffix in ((out, ".mp4"), (detections, ".jsonl"),
             (mot, ".txt"))]  # fmt: skip
    if not folder:
        return predict_videos(backend, videos, *paths, codec, live, reconnect, crash_safe)
    results = []
    for video, *files in zip(videos, *paths):
        results += predict_videos(backend, [video], *([f] for f in files), codec, live, reconnect, crash_safe)
        if isinstance(results[-1], VideoError):
            LOGGER.error(str(results[-1]))
        elif results[-1].interrupted:
            break
    return results


def outputs(videos: list[str], value, suffix: str, folder: bool = False) -> list[Path | None]:
    """Each video's output path from ``value``: None (no such output), one path per video, or one folder (a path
    without suffix, required for a folder source) that gets ``<name><suffix>`` for each."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if values == [None]:
        return [None] * len(videos)
    if len(values) == 1 and not Path(values[0]).suffix:
        return [Path(values[0]) / f"{name}{suffix}" for name in source_names(videos)]
    if folder:
        raise VideoError(f"{values[0]}: a folder source writes one file per video, into a folder: give a folder")
    if len(values) != len(videos):
        raise VideoError(f"{' '.join(map(str, values))}: give one output per source ({len(videos)}) or one folder")
    return [Path(v) for v in values]
