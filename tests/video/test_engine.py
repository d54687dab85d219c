"""The overlap engine: the model's own predictions in any batch size, tracking, torch's threads, several sources at
once through one model, and live sources that keep only the newest frame while inference is busy."""

import json
import socket
import threading

import pytest
import torch
from helpers.video import read_video, stream_clip, write_clip
from ultralytics import YOLO

from cspdet.video import VideoError, load_backend, predict_video, predict_videos
from cspdet.video.detections import mismatched_frames, read_detections
from cspdet.video.engine import Feed, Lane
from cspdet.video.sources import Frame, Gap, open_source


@pytest.mark.compat("video")
def test_smoke_detections_equal_model_predict(tmp_path, model, imgsz):
    """On every ultralytics release: the pipeline's detections are those of Model.predict on the decoded frames."""
    clip = write_clip(tmp_path / "a.mp4", frames=12)
    backend = load_backend(model, imgsz=imgsz, device="cpu")
    summary = predict_video(backend, clip, tmp_path / "out.mp4", detections=tmp_path / "d.jsonl")
    assert summary.frames == 12 and read_video(tmp_path / "out.mp4")["times"] == read_video(clip)["times"]
    source = open_source(clip)
    images = [frame.image for frame in source.read()]
    source.close()
    results = YOLO(model).predict(images, imgsz=imgsz, device="cpu", verbose=False)
    expected = [r.boxes.data[:, :6].cpu().numpy() for r in results]
    ours = read_detections(tmp_path / "d.jsonl")
    assert sum(map(len, ours)) > 12
    assert mismatched_frames(ours, expected, pixels=0.02, score=1e-4) == []


def test_batch_sizes_give_the_same_detections(tmp_path, backend, model, clip, imgsz):
    detections = {}
    for batch in (1, 4, 7):  # 60 frames: 7 leaves a last partial batch of 4
        loaded = backend if batch == 4 else load_backend(model, imgsz=imgsz, batch=batch, device="cpu")
        summary = predict_video(loaded, clip, tmp_path / f"b{batch}.mp4", detections=tmp_path / f"b{batch}.jsonl")
        assert summary.frames == 60 and not summary.truncated and not summary.interrupted
        detections[batch] = read_detections(tmp_path / f"b{batch}.jsonl")
    assert sum(map(len, detections[1])) > 100
    assert mismatched_frames(detections[1], detections[4]) == []
    assert mismatched_frames(detections[1], detections[7]) == []


def test_torch_threads_change_only_during_a_run(tmp_path, backend, clip):
    before = torch.get_num_threads()
    seen = []
    original = backend.draw
    backend.draw = lambda result: seen.append(torch.get_num_threads()) or original(result)
    try:
        predict_video(backend, clip, tmp_path / "out.mp4")
    finally:
        backend.draw = original
    assert set(seen) == {backend.threads} and torch.get_num_threads() == before


@pytest.mark.parametrize("tracker", ["bytetrack", "botsort"])
def test_tracking_writes_ids_and_mot_rows(tmp_path, model, clip, imgsz, tracker):
    tracking = load_backend(model, imgsz=imgsz, device="cpu", tracker=tracker)
    assert len(tracking.predictors) == 1  # trackers need the frames in order
    summary = predict_video(tracking, clip, tmp_path / "t.mp4", tmp_path / "t.jsonl", tmp_path / "t.txt")
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(rows) == summary.frames == 60
    tracked = [row for row in rows if "ids" in row]  # before 8.4, a frame whose boxes no track took has no ids
    assert len(tracked) > 40 and all(len(row["ids"]) == len(row["boxes"]) for row in tracked)
    mot = [line.split(",") for line in (tmp_path / "t.txt").read_text().splitlines()]
    assert len(mot) == sum(len(row["ids"]) for row in tracked) > 0
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


def test_mot_needs_a_tracker(tmp_path, backend, clip):
    with pytest.raises(VideoError, match="MOT rows need track ids"):
        predict_video(backend, clip, tmp_path / "o.mp4", mot=tmp_path / "m.txt")
    assert not list(tmp_path.iterdir())


def test_a_live_lane_keeps_only_the_newest_waiting_frame_and_bounds_those_in_flight():
    feed = Feed([Lane(waiting_max=8, in_flight_max=2, live=True)])
    for i in range(5):  # a camera faster than inference: nothing takes them
        assert feed.put(0, Frame(i, i, i / 30, 0.0, None))
    (newest,) = feed.take(4)
    assert newest.index == 4 and feed.lanes[0].dropped == 4  # the latency is one frame's, however many came
    feed.put(0, Frame(5, 5, 5 / 30, 0.0, None))
    assert [f.index for f in feed.take(4)] == [5] and not feed.lanes[0].ready  # two in flight: the lane waits
    feed.put(0, Frame(6, 6, 6 / 30, 0.0, None))
    assert not feed.lanes[0].ready
    feed.release(0)
    feed.end(0)
    assert [f.index for f in feed.take(4)] == [6] and feed.take(4) == []


def test_a_live_lane_keeps_the_gap_of_a_dropped_frame():
    """The first frame after a reconnection is dropped while inference is busy: the frame kept records the gap."""
    feed = Feed([Lane(waiting_max=8, in_flight_max=2, live=True)])
    feed.put(0, Frame(0, 0, 0.0, 0.0, None, gap=Gap(-2.0, 2.0)))
    feed.put(0, Frame(1, 1, 1 / 30, 0.0, None))
    (kept,) = feed.take(4)
    assert kept.index == 1 and kept.gap == Gap(-2.0, 2.0)


def test_a_live_stream_drops_what_comes_while_inference_is_busy_and_keeps_the_newest(tmp_path, backend):
    """Inference held up until a loopback MPEG-TS stream has sent all its frames: the frames that came meanwhile are
    dropped but for the newest, which is written (the output does not fall behind the stream); the output keeps the
    kept frames' own timestamps."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sent, url, errors, done = 300, f"tcp://127.0.0.1:{port}", [], threading.Event()

    def serve():
        try:
            stream_clip(url, sent, fps=100)
        except Exception as e:
            errors.append(e)
        finally:
            done.set()

    original = backend.draw

    def held(result):
        done.wait(60)
        return original(result)

    sender = threading.Thread(target=serve)
    sender.start()
    backend.draw = held
    try:
        listening = f"{url}?listen=1&listen_timeout=30000"  # an FFmpeg URL: wait for the sender to connect
        summary = predict_video(backend, listening, tmp_path / "live.mp4", tmp_path / "live.jsonl", reconnect=0)
    finally:
        backend.draw = original
        sender.join(timeout=60)
    assert not errors and not sender.is_alive()
    assert summary.live and summary.frames + summary.dropped == sent  # every frame sent was either kept or dropped
    assert summary.dropped > 0 and "dropped" in str(summary) and "p95" in str(summary)
    rows = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    assert rows[-1]["frame"] == sent - 1  # the newest frame, not a backlog
    assert [row["frame"] for row in rows] == sorted({row["frame"] for row in rows})
    times = [float(t) for t in read_video(tmp_path / "live.mp4")["times"]]
    assert len(times) == summary.frames and times == sorted(set(times))
    assert [row["t"] for row in rows] == pytest.approx(times, abs=1e-5)
    ticks = [(b - a) * 100 for a, b in zip(times, times[1:])]
    assert all(abs(t - round(t)) < 0.02 for t in ticks) and max(ticks) > 1.5  # the sender's clock, gaps where dropped


def test_several_sources_at_once_get_the_detections_each_gets_alone(tmp_path, backend, clip):
    """Frames of sources of one size share batches; each source keeps its own detections, timestamps and outputs."""
    videos = [clip, write_clip(tmp_path / "b.mp4", frames=45, seed=3), write_clip(tmp_path / "c.mkv", frames=30,
              size=(256, 192), fps=25, seed=4, vfr=True)]  # fmt: skip
    for i, video in enumerate(videos):
        predict_video(backend, video, tmp_path / f"alone{i}.mp4", tmp_path / f"alone{i}.jsonl")
    outs, rows = [tmp_path / f"together{i}.mp4" for i in range(3)], [tmp_path / f"together{i}.jsonl" for i in range(3)]
    summaries = predict_videos(backend, videos, outs, rows)
    for i, (video, summary) in enumerate(zip(videos, summaries)):
        together, alone = read_detections(rows[i]), read_detections(tmp_path / f"alone{i}.jsonl")
        assert summary.source == str(video) and summary.out == outs[i] and summary.frames == len(together)
        assert sum(map(len, together)) > len(together) and mismatched_frames(together, alone) == []
        assert read_video(outs[i])["times"] == read_video(video)["times"]


def test_several_sources_are_tracked_each_with_its_own_trackers(tmp_path, model, clip, imgsz):
    tracking = load_backend(model, imgsz=imgsz, device="cpu", tracker="bytetrack")
    videos = [clip, write_clip(tmp_path / "b.mp4", frames=45, seed=3)]
    for i, video in enumerate(videos):
        predict_video(tracking, video, tmp_path / f"alone{i}.mp4", tmp_path / f"alone{i}.jsonl")
    rows = [tmp_path / f"together{i}.jsonl" for i in range(2)]
    predict_videos(tracking, videos, [tmp_path / f"together{i}.mp4" for i in range(2)], rows)
    for i in range(2):
        together = [json.loads(line) for line in rows[i].read_text().splitlines()]
        alone = [json.loads(line) for line in (tmp_path / f"alone{i}.jsonl").read_text().splitlines()]
        # batches differ in size alone and together, so boxes are equal to the float tolerance; the tracks exactly
        assert [row.get("ids") for row in together] == [row.get("ids") for row in alone]
        assert mismatched_frames(read_detections(rows[i]), read_detections(tmp_path / f"alone{i}.jsonl")) == []
        assert sum(len(row.get("ids", [])) for row in together) > 10
