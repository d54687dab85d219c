"""`cspdet video` as a user runs it: outputs, folders, failures before any work, truncated files, Ctrl-C twice, and live
loopback cameras that drop their clients, die, or whose recording is killed."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from helpers import OFFLINE_ENV, cspdet
from helpers.video import LoopbackCamera, detecting_model, write_clip

from cspdet.data.shapes import video_frames, write_video

IMGSZ = 160


def info(path) -> tuple[str, list, tuple[int, int]]:
    """(codec, frame times in seconds, size) of a video, as FFmpeg decodes it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [frame.pts * stream.time_base for frame in container.decode(stream)]
        return stream.codec_context.name, times, (stream.width, stream.height)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 60-frame 320x240 shapes video at 30 fps (OpenCV mp4v, as `cspdet shapes video` writes it)."""
    return write_video(tmp_path_factory.mktemp("clip") / "shapes.mp4", frames=60, size=(320, 240), fps=30, seed=0)


@pytest.fixture(scope="module")
def model(tmp_path_factory, clip) -> Path:
    """An untrained csp_wrc-n calibrated on ``clip`` so that it detects a few boxes per frame."""
    return detecting_model(tmp_path_factory.mktemp("model") / "demo.pt", clip, imgsz=IMGSZ)


@pytest.mark.compat("video")
def test_annotates_a_video(tmp_path, model, clip):
    out = tmp_path / "out"
    args = ["--model", model, "--source", clip, "--out", out / "a.mp4", "--detections", out / "a.jsonl"]
    result = cspdet("video", *map(str, args), "--imgsz", str(IMGSZ), "--device", "cpu")
    codec, times, size = info(out / "a.mp4")
    assert (codec, size) == ("h264", (320, 240)) and times == info(clip)[1] and len(times) == 60
    rows = [json.loads(line) for line in (out / "a.jsonl").read_text().splitlines()]
    assert [row["frame"] for row in rows] == list(range(60)) and rows[30]["t"] == pytest.approx(1.0)
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "a.mp4"]
    summary = next(line for line in (result.stdout + result.stderr).splitlines() if " frames/s in " in line)
    assert "60 frames" in summary and "frames/s" in summary and "dropped" not in summary
    assert all(f"{stage} " in summary for stage in ("decode", "prepost", "runtime", "drawing", "encoding", "pipeline"))


def test_folder_source_writes_each_video_and_reports_the_bad_one(tmp_path, model, clip):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(clip, videos / "a.mp4")
    write_video(videos / "b.mp4", frames=20, size=(160, 120), fps=25, seed=1)
    (videos / "broken.mp4").write_text("not a video\n")
    out = tmp_path / "out"
    args = ["--model", model, "--source", videos, "--out", out, "--detections", out, "--imgsz", IMGSZ]
    result = cspdet("video", *map(str, args), check=False)
    assert result.returncode == 1
    assert "broken.mp4: FFmpeg cannot open it as a video" in result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "a.mp4", "b.jsonl", "b.mp4"]
    assert len(info(out / "b.mp4")[1]) == 20
    refused = cspdet("video", "--model", str(model), "--source", str(videos), "--out", str(tmp_path / "o.mp4"),
                     check=False)  # fmt: skip
    assert refused.returncode == 1 and "give a folder" in refused.stderr


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["--source", "nope.mp4"], 1, "cspdet video: error: nope.mp4: no such file or folder"),
        (["--out", "o.gif"], 1, "cspdet video: error: o.gif: unsupported output video suffix '.gif'"),
        (["--codec", "libnope"], 1, "cspdet video: error: o.mp4: FFmpeg has no encoder 'libnope' (--codec)"),
        (["--mot", "m.txt"], 2, "cspdet video: error: --mot needs --track (MOT rows carry track ids)"),
    ],
)
def test_bad_input_fails_before_loading_the_model(tmp_path, clip, args, status, message):
    base = {"--model": "missing.pt", "--source": str(clip), "--out": "o.mp4"}  # a missing model is never reached
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    result = cspdet("video", *[x for kv in base.items() for x in kv], cwd=tmp_path, check=False)
    assert result.returncode == status and result.stderr.strip().splitlines()[-1].startswith(message)
    assert not list(tmp_path.iterdir())


def test_truncated_video_keeps_the_decoded_frames(tmp_path, model):
    source = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for frame, _ in video_frames(60, (320, 240), seed=2):
        writer.write(frame)
    writer.release()
    data = source.read_bytes()
    source.write_bytes(data[: len(data) * 6 // 10])  # as a copy or download cut short
    decodable = len(info(source)[1])
    assert 0 < decodable < 60
    out, summary = tmp_path / "out.mp4", tmp_path / "summary.json"
    args = ["--source", str(source), "--out", str(out), "--summary", str(summary), "--imgsz", str(IMGSZ)]
    result = cspdet("video", "--model", str(model), *args)
    assert f"decoded {decodable} of the 60 frames" in result.stdout + result.stderr
    assert f"{60 - decodable} could not be decoded" in result.stdout + result.stderr
    assert info(out)[1] == info(source)[1] and "Traceback" not in result.stdout + result.stderr
    (row,) = json.loads(summary.read_text())
    assert (row["frames"], row["announced"], row["undecodable"]) == (decodable, 60, 60 - decodable)


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_broken_matroska_is_annotated_up_to_where_it_breaks(tmp_path, model, damage):
    source = write_clip(tmp_path / "clip.mkv", frames=60)
    data = bytearray(source.read_bytes())
    if damage == "cut":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 2000] = np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes()
    source.write_bytes(bytes(data))
    decodable = len(info(source)[1])
    out, summary = tmp_path / "out.mp4", tmp_path / "summary.json"
    result = cspdet("video", "--model", str(model), "--source", str(source), "--out", str(out), "--summary",
                    str(summary), "--imgsz", str(IMGSZ))  # fmt: skip
    (row,) = json.loads(summary.read_text())
    assert 0 < row["frames"] == decodable < 60 and row["undecodable"] == 60 - decodable  # from the announced duration
    assert info(out)[1] == info(source)[1] and "Traceback" not in result.stdout + result.stderr


def test_ctrl_c_twice_still_leaves_a_playable_video(tmp_path, model):
    source = write_video(tmp_path / "long.mp4", frames=3000, size=(160, 120), fps=30, seed=3)  # far from done at Ctrl-C
    out = tmp_path / "out" / "long.mp4"
    command = [str(Path(sys.executable).with_name("cspdet")), "video", "--model", str(model), "--source", str(source)]
    process = subprocess.Popen([*command, "--out", str(out), "--imgsz", str(IMGSZ)], env={**os.environ, **OFFLINE_ENV},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not any(p.stat().st_size > 20_000 for p in out.parent.glob(".long.*")):  # frames are being written
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.05)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    process.send_signal(signal.SIGINT)
    while not any("Ctrl-C: finishing" in line for line in lines):  # the first one handled
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)  # while the frames taken are finished and the outputs finalised
    process.wait(timeout=120)
    reader.join(timeout=10)
    output = "".join(lines)
    assert process.returncode == 130, output
    codec, times, size = info(out)
    assert codec == "h264" and 0 < len(times) < 3000 and size == (160, 120)
    assert times == info(source)[1][: len(times)]
    assert f"{len(times)} frames (interrupted)" in output and "Ctrl-C again" in output
    assert [p.name for p in out.parent.iterdir()] == ["long.mp4"]


def _run_on_camera(tmp_path, model, urls, *args) -> tuple[subprocess.CompletedProcess, list]:
    """`cspdet video` on loopback cameras (outputs in tmp_path/rec/), and its summary rows."""
    summary = tmp_path / "summary.json"
    rec = tmp_path / "rec"
    out = [str(rec / "cam.mp4")] if len(urls) == 1 else [str(rec)]
    detections = [str(rec / "cam.jsonl")] if len(urls) == 1 else [str(rec)]
    result = cspdet("video", "--model", str(model), "--source", *urls, "--out", *out, "--detections", *detections,
                    "--summary", str(summary), "--imgsz", str(IMGSZ), *args, check=False, timeout=300)  # fmt: skip
    return result, json.loads(summary.read_text())


def _rows(path) -> list[dict]:
    """The JSON lines of a detections file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _recorded(path) -> float:
    """Seconds of a live source that a detections file being written holds."""
    lines = Path(path).read_text().splitlines()
    return json.loads(lines[-2])["t"] if len(lines) > 1 else 0.0  # the last line may be half written


def test_a_camera_that_drops_its_client_twice_is_recorded_into_one_file(tmp_path, model):
    with LoopbackCamera(shares=(30, 30, 30), pause=1.0) as camera:
        result, (row,) = _run_on_camera(tmp_path, model, [camera.url], "--reconnect", "2")
    output = result.stdout + result.stderr
    assert camera.sent == [30, 30, 30] and not camera.errors
    assert result.returncode == 1 and "lost for good" in output and "Traceback" not in output  # it never came back
    codec, times, _ = info(tmp_path / "rec" / "cam.mp4")
    rows = _rows(tmp_path / "rec" / "cam.jsonl")
    assert codec == "h264" and [row["t"] for row in rows] == pytest.approx([float(t) for t in times], abs=1e-5)
    assert times == sorted(set(times))  # frames of all three connections, in one timeline
    gaps = [(i, row["gap"]) for i, row in enumerate(rows) if "gap" in row]
    assert [gap for _, gap in gaps] == row["gaps"] and len(gaps) == 2
    for i, gap in gaps:  # the time the camera was away is kept in the timestamps (frames around it may be dropped)
        assert gap["length"] >= 1.0 and rows[i - 1]["t"] <= gap["start"] + 1e-6
        assert float(times[i] - times[i - 1]) >= gap["length"] - 1e-3
    assert row["lost"] == pytest.approx(rows[-1]["t"]) and row["frames"] == len(rows)
    assert b"moof" in (tmp_path / "rec" / "cam.mp4").read_bytes()  # a live recording is fragmented


def test_kill_9_leaves_a_playable_recording_and_its_detections(tmp_path, model):
    rec = tmp_path / "rec"
    with LoopbackCamera(shares=(1800,)) as camera:  # a minute of frames, far more than the run gets
        command = [str(Path(sys.executable).with_name("cspdet")), "video", "--model", str(model), "--source",
                   camera.url, "--out", str(rec / "cam.mp4"), "--detections", str(rec / "cam.jsonl"), "--imgsz",
                   str(IMGSZ), "--reconnect", "0"]  # fmt: skip
        process = subprocess.Popen(command, env={**os.environ, **OFFLINE_ENV}, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 300
        while not (rec / "cam.jsonl").exists() or _recorded(rec / "cam.jsonl") < 3.0:  # 3 s of the camera recorded
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    codec, times, size = info(rec / "cam.mp4")  # where it was recorded: it plays
    rows = _rows(rec / "cam.jsonl")  # whole lines only
    assert codec == "h264" and size == (320, 240) and len(times) > 0 and rows[-1]["t"] >= 3.0
    assert [row["t"] for row in rows[: len(times)]] == pytest.approx([float(t) for t in times], abs=1e-5)
    assert rows[-1]["t"] - float(times[-1]) <= 2.0  # all but the last 2 s of what was annotated


def test_two_cameras_at_once_one_of_which_dies(tmp_path, model):
    with LoopbackCamera(shares=(150,), seed=1) as alive, LoopbackCamera(shares=(30,), seed=2) as dying:
        result, rows = _run_on_camera(tmp_path, model, [alive.url, dying.url], "--reconnect", "1")
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr  # both lost, in the end
    first, second = rows
    assert (first["out"], second["out"]) == (str(tmp_path / "rec" / "cam.mp4"), str(tmp_path / "rec" / "cam-2.mp4"))
    assert 0 < second["frames"] <= 30 and first["frames"] > second["frames"]  # one model, batched: both annotated
    assert first["lost"] > second["lost"] + 2  # the live camera went on long after the other died
    for row, name in ((first, "cam"), (second, "cam-2")):
        times = info(tmp_path / "rec" / f"{name}.mp4")[1]
        assert [r["t"] for r in _rows(tmp_path / "rec" / f"{name}.jsonl")] == pytest.approx(
            [float(t) for t in times], abs=1e-5
        )
        assert len(times) == row["frames"]


def test_unreachable_stream_at_start_is_one_line(tmp_path, model):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/cam.ts"  # nothing listens there
    result = cspdet("video", "--model", str(model), "--source", url, "--out", str(tmp_path / "o.mp4"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"cspdet video: error: {url}: FFmpeg cannot open it as a video " \
        "(Connection refused)"  # fmt: skip
    assert not list(tmp_path.iterdir())
