"""Video inference for ultralytics models: FFmpeg decoding and H.264 output, overlapped decoding, batched inference and
encoding, several sources through one model, live sources with bounded latency that reconnect when lost, recordings
that survive a crash, exported models with their own thread policies.

``sources`` (files, folders, webcams, streams), ``backends`` (model loading, threads), ``draw`` (boxes drawn as
``yolo predict`` draws them), ``engine`` (the overlap of the stages), ``sinks`` (annotated video, JSON lines, MOT rows)
and ``predict`` (the entry points).
"""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.video.backends import Backend, load_backend
from cspdet.video.engine import STAGES, VideoSummary
from cspdet.video.predict import predict_source, predict_video, predict_videos, source_names
from cspdet.video.sinks import DEFAULT_CODEC, check_output
from cspdet.video.sources import Gap, VideoError, VideoInfo, find_sources, is_live, open_source

__all__ = [
    "DEFAULT_CODEC",
    "STAGES",
    "Backend",
    "Gap",
    "VideoError",
    "VideoInfo",
    "VideoSummary",
    "check_output",
    "find_sources",
    "is_live",
    "load_backend",
    "open_source",
    "predict_source",
    "predict_video",
    "predict_videos",
    "source_names",
]
