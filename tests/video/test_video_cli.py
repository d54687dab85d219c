"""tools/video_infer.py as a user runs it: outputs, equality with `yolo predict`, ONNX, folders, truncation, Ctrl-C."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from ultralytics import YOLO

from cspdet.data.shapes import video_frames, write_video
from cspdet.video import load_predictor, predict_video
from cspdet.video.bench import mismatched_frames, read_detections, read_yolo_labels

YOLO_CLI = str(Path(sys.executable).with_name("yolo"))


def yolo_predict_labels(model, video, imgsz, project) -> list:
    """Detections of `yolo predict` on ``video``, read back from its save_txt labels."""
    args = [YOLO_CLI, "predict", f"model={model}", f"source={video}", f"imgsz={imgsz}", "save=False"]
    args += ["save_txt=True", "save_conf=True", "device=cpu", f"project={project}", "name=predict"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    capture = cv2.VideoCapture(str(video))
    frames, size = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), (int(capture.get(3)), int(capture.get(4)))
    capture.release()
    return read_yolo_labels(Path(project) / "predict" / "labels", Path(video).stem, frames, size)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, cli, model, video, imgsz):
    """Run the CLI once on the shapes video; return (output folder, completed process)."""
    out = tmp_path_factory.mktemp("annotated")
    args = ["--model", model, "--source", video, "--out", out / "shapes.mp4", "--detections", out / "shapes.jsonl"]
    return out, cli(*args, "--imgsz", imgsz, "--device", "cpu")


def test_outputs_match_the_input_video(annotated, video, video_info):
    out, result = annotated
    frames, fps, width, height = video_info(video)
    assert video_info(out / "shapes.mp4") == (frames, fps, width, height) == (60, 30.0, 320, 240)
    rows = [json.loads(line) for line in (out / "shapes.jsonl").read_text().splitlines()]
    assert [row["frame"] for row in rows] == list(range(60))
    assert all(len(box) == 6 and 0 <= box[0] <= box[2] <= 320 and 0 <= box[1] <= box[3] <= 240 for row in rows
               for box in row["boxes"])  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["shapes.jsonl", "shapes.mp4"]  # no temporary file left
    summary = result.stdout.strip().splitlines()[-1]
    assert "60 frames" in summary and "frames/s" in summary
    assert all(stage in summary for stage in ("decode", "inference", "drawing", "encoding"))


@pytest.mark.compat("video")
def test_detections_equal_yolo_predict(annotated, tmp_path, model, video, imgsz):
    ours = read_detections(annotated[0] / "shapes.jsonl")  # batch 4
    theirs = yolo_predict_labels(model, video, imgsz, tmp_path)  # batch 1
    assert sum(map(len, ours)) > 100, "too few detections for a meaningful comparison"
    assert mismatched_frames(ours, theirs) == []


def test_onnx_export_gives_the_detections_of_yolo_predict(tmp_path, model, video, imgsz):
    pytest.importorskip("onnxruntime")
    onnx = YOLO(model).export(format="onnx", imgsz=imgsz, device="cpu")  # what `yolo export format=onnx` runs
    predictor = load_predictor(onnx, imgsz=imgsz, device="cpu")
    predict_video(predictor, video, tmp_path / "a.mp4", detections=tmp_path / "a.jsonl")
    ours = read_detections(tmp_path / "a.jsonl")
    assert sum(map(len, ours)) > 100
    assert mismatched_frames(ours, yolo_predict_labels(onnx, video, imgsz, tmp_path)) == []


def test_folder_source_writes_each_video_and_reports_the_bad_one(tmp_path, cli, model, video, imgsz, video_info):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(video, videos / "a.mp4")
    write_video(videos / "b.mp4", frames=20, size=(160, 120), fps=25, seed=1)
    (videos / "broken.mp4").write_text("not a video\n")
    out = tmp_path / "out"
    result = cli("--model", model, "--source", videos, "--out", out, "--detections", out, "--imgsz", imgsz, check=False)
    assert result.returncode == 1
    assert "broken.mp4" in result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "a.mp4", "b.jsonl", "b.mp4"]
    assert video_info(out / "b.mp4") == (20, 25.0, 160, 120)
    refused = cli("--model", model, "--source", videos, "--out", tmp_path / "one.mp4", check=False)
    assert refused.returncode == 1 and "give a folder" in refused.stdout + refused.stderr


def test_missing_source_fails_before_loading_the_model(tmp_path, cli):
    result = cli("--model", tmp_path / "none.pt", "--source", tmp_path / "nope.mp4", "--out", tmp_path / "o.mp4",
                 check=False)  # fmt: skip
    assert result.returncode == 1
    assert f"{tmp_path / 'nope.mp4'}: no such file" in result.stdout + result.stderr


def test_mot_needs_a_tracker(tmp_path, cli, model, video):
    result = cli("--model", model, "--source", video, "--out", tmp_path / "o.mp4", "--mot", tmp_path / "m.txt",
                 check=False)  # fmt: skip
    assert result.returncode == 2 and "--mot needs --track" in result.stderr


def test_truncated_video_keeps_the_decoded_frames(tmp_path, cli, model, imgsz, video_info):
    source = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for frame, _ in video_frames(60, (320, 240), seed=2):
        writer.write(frame)
    writer.release()
    data = source.read_bytes()
    source.write_bytes(data[: len(data) * 6 // 10])  # as a copy or download cut short
    decodable = video_info(source)[0]
    assert 0 < decodable < 60
    out = tmp_path / "out.mp4"
    result = cli("--model", model, "--source", source, "--out", out, "--imgsz", imgsz)
    assert f"decoded {decodable} of the 60 frames" in result.stdout + result.stderr
    assert video_info(out) == (decodable, 30.0, 320, 240)


def test_ctrl_c_keeps_a_playable_partial_video(tmp_path, model, imgsz, video_info):
    source = write_video(tmp_path / "long.mp4", frames=600, size=(160, 120), fps=30, seed=3)
    out = tmp_path / "out" / "long.mp4"
    args = [sys.executable, str(Path(__file__).parents[2] / "tools" / "video_infer.py"), "--model", str(model)]
    process = subprocess.Popen(
        [*args, "--source", str(source), "--out", str(out), "--imgsz", str(imgsz)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in out.parent.glob(".long.*")):  # frames are being written
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    frames, fps, width, height = video_info(out)
    assert 0 < frames < 600 and (fps, width, height) == (30.0, 160, 120)
    assert f"{frames} frames (interrupted)" in output
    assert [p.name for p in out.parent.iterdir()] == ["long.mp4"]
