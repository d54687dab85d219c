"""cspdet.video in process: batch sizes, tracking and MOT rows, and the failures of bad sources."""

import json

import cv2
import pytest

from cspdet.data.shapes import video_frames
from cspdet.video import VideoError, load_predictor, predict_source, predict_video
from cspdet.video.bench import mismatched_frames, read_detections


def test_batch_sizes_give_the_same_detections(tmp_path, predictor, model, video, imgsz):
    one = load_predictor(model, imgsz=imgsz, batch=1, device="cpu")
    seven = load_predictor(model, imgsz=imgsz, batch=7, device="cpu")  # 60 frames: a last partial batch of 4
    detections = {}
    for name, p in (("b1", one), ("b4", predictor), ("b7", seven)):
        summary = predict_video(p, video, tmp_path / f"{name}.mp4", detections=tmp_path / f"{name}.jsonl")
        assert summary.frames == 60 and not summary.truncated and not summary.interrupted
        detections[name] = read_detections(tmp_path / f"{name}.jsonl")
    assert sum(map(len, detections["b1"])) > 100
    assert mismatched_frames(detections["b1"], detections["b4"]) == []
    assert mismatched_frames(detections["b1"], detections["b7"]) == []


@pytest.mark.parametrize("tracker", ["bytetrack", "botsort"])
def test_tracking_writes_ids_and_mot_rows(tmp_path, model, video, imgsz, tracker):
    pytest.importorskip("lap")  # ultralytics' trackers need it
    tracking = load_predictor(model, imgsz=imgsz, device="cpu", tracker=tracker)
    summary = predict_video(tracking, video, tmp_path / "t.mp4", tmp_path / "t.jsonl", tmp_path / "t.txt")
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(rows) == summary.frames == 60
    assert all(len(row.get("ids", [])) == len(row["boxes"]) for row in rows)
    mot = [line.split(",") for line in (tmp_path / "t.txt").read_text().splitlines()]
    assert len(mot) == summary.detections > 0
    assert all(len(row) == 10 and row[7:] == ["-1", "-1", "-1"] and 1 <= int(row[0]) <= 60 for row in mot)
    frames_per_id = {}
    for row in mot:
        frames_per_id.setdefault(int(row[1]), set()).add(int(row[0]))
    assert max(map(len, frames_per_id.values())) >= 10  # some objects are followed across frames
    first = next(row for row in rows if row["boxes"])  # MOT boxes are the JSON boxes as left, top, width, height
    x1, y1, x2, y2, score, _ = first["boxes"][0]
    frame, track, left, top, width, height, conf = (float(v) for v in mot[0][:7])
    assert (frame, track) == (first["frame"] + 1, first["ids"][0])
    assert (left, top, width, height, conf) == pytest.approx((x1, y1, x2 - x1, y2 - y1, score), abs=0.02)


def _zero_frame_avi(path):
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240)).release()


def _unknown_codec_avi(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for frame, _ in video_frames(5, (320, 240)):
        writer.write(frame)
    writer.release()
    path.write_bytes(path.read_bytes().replace(b"MJPG", b"QQQQ"))  # a codec FFmpeg does not know


def _undecodable_mp4(path, video):
    data = bytearray(video.read_bytes())
    start, end = data.find(b"mdat") + 4, data.find(b"moov") - 4  # OpenCV writes the index (moov) last
    data[start:end] = bytes(end - start)
    path.write_bytes(data)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("text", "OpenCV cannot open it as a video"),
        ("unknown codec", "OpenCV cannot open it as a video"),
        ("mp4 cut before its index", "OpenCV cannot open it as a video"),
        ("zero frames", "the video has no frames"),
        ("undecodable frames", "none of its 60 frames could be decoded"),
    ],
)
def test_bad_sources_fail_clearly_and_write_nothing(tmp_path, predictor, video, case, message):
    source = tmp_path / ("bad.avi" if "codec" in case or "zero" in case else "bad.mp4")
    if case == "text":
        source.write_text("not a video\n")
    elif case == "unknown codec":
        _unknown_codec_avi(source)
    elif case == "mp4 cut before its index":
        source.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    elif case == "zero frames":
        _zero_frame_avi(source)
    elif case == "undecodable frames":
        _undecodable_mp4(source, video)
    out = tmp_path / "out"
    with pytest.raises(VideoError, match=message) as error:
        predict_video(predictor, str(source), out / "o.mp4", detections=out / "o.jsonl")
    assert str(source) in str(error.value)
    assert not out.exists() or not list(out.iterdir())


def test_mot_without_tracker_and_bad_output_suffix_are_refused(tmp_path, predictor, video):
    with pytest.raises(VideoError, match="MOT rows need track ids"):
        predict_video(predictor, video, tmp_path / "o.mp4", mot=tmp_path / "m.txt")
    with pytest.raises(VideoError, match="unsupported output video suffix"):
        predict_video(predictor, video, tmp_path / "o.gif")
    assert not list(tmp_path.iterdir())


def test_url_and_webcam_sources_go_through_the_capture_path(tmp_path, predictor, video, video_info):
    summary = predict_video(predictor, video.as_uri(), tmp_path / "url.mp4")  # file:// is read as a stream URL
    assert summary.frames == 60 and video_info(tmp_path / "url.mp4") == (60, 30.0, 320, 240)
    with pytest.raises(VideoError, match="9: cannot open this camera or stream"):
        predict_source(predictor, "9", tmp_path / "camera.mp4")  # no camera 9 here
