"""Video inference for ultralytics models: FFmpeg decoding and H.264 output, overlapped decoding, batched inference and
encoding, live sources with bounded latency, exported models with their own thread policies.

``sources`` (files, folders, webcams, streams), ``backends`` (model loading, threads), ``engine`` (the overlap of the
stages), ``sinks`` (annotated video, JSON lines, MOT rows) and ``predict`` (the entry points).
"""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.video.backends import Backend, load_backend
from cspdet.video.engine import STAGES, VideoSummary
from cspdet.video.predict import predict_source, predict_video
from cspdet.video.sinks import DEFAULT_CODEC, check_output
from cspdet.video.sources import VideoError, find_sources, is_live, open_source

__all__ = [
    "DEFAULT_CODEC",
    "STAGES",
    "Backend",
    "VideoError",
    "VideoSummary",
    "check_output",
    "find_sources",
    "is_live",
    "load_backend",
    "open_source",
    "predict_source",
    "predict_video",
]
