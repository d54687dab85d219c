"""`cspdet video` as a user runs it: outputs, folders, failures before any work, truncated files, Ctrl-C twice."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import pytest
from helpers import OFFLINE_ENV, cspdet

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
    from cspdet.research.video_bench import demo_model

    return demo_model(tmp_path_factory.mktemp("model") / "demo.pt", clip, imgsz=IMGSZ)


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
    assert all(stage in summary for stage in ("decode", "inference", "drawing", "encoding"))


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
    out = tmp_path / "out.mp4"
    result = cspdet("video", "--model", str(model), "--source", str(source), "--out", str(out), "--imgsz", str(IMGSZ))
    assert f"decoded {decodable} of the 60 frames" in result.stdout + result.stderr
    assert info(out)[1] == info(source)[1]


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
