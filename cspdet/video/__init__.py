"""Fast video inference for ultralytics models: threaded decoding, batched inference, threaded drawing and encoding."""

import ultralytics  # noqa: F401  (first: cspdet installs itself into ultralytics before its own modules load)

from cspdet.video.io import VideoError, find_sources, open_video
from cspdet.video.pipeline import STAGES, VideoSummary, load_predictor, predict_source, predict_video

__all__ = [
    "STAGES",
    "VideoError",
    "VideoSummary",
    "find_sources",
    "load_predictor",
    "open_video",
    "predict_source",
    "predict_video",
]
