"""Outputs: H.264 that browsers play, with the input's frames, timestamps and audio; JSON lines with times."""

import itertools
import json

import av
import numpy as np
import pytest
from helpers.video import audio_packets, read_video, write_clip

from cspdet.video import VideoError, check_output, open_source, predict_video
from cspdet.video.sinks import VideoSink


def test_h264_output_has_the_input_frames_and_timestamps(tmp_path, backend, clip):
    summary = predict_video(backend, clip, tmp_path / "out.mp4", detections=tmp_path / "d.jsonl")
    out, source = read_video(tmp_path / "out.mp4"), read_video(clip)
    assert (out["codec"], out["pix_fmt"], out["size"]) == ("h264", "yuv420p", (320, 240))
    assert out["times"] == source["times"] and len(out["times"]) == summary.frames == 60
    data = (tmp_path / "out.mp4").read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first, so browsers start playing at once
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [row["frame"] for row in rows] == list(range(60))
    assert [row["t"] for row in rows] == [round(float(t), 6) for t in source["times"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "out.mp4"]  # no temporary file left


def test_drawn_frames_reach_the_encoder_in_their_colours(tmp_path, clip):
    """The sink's BGR to yuv420p conversion (OpenCV's) keeps every colour, up to H.264's loss."""
    source = open_source(clip)
    sink = VideoSink(tmp_path / "out.mp4", source, draw=lambda image: image)  # "drawn" as decoded
    images = []
    for frame in itertools.islice(source.read(), 8):
        images.append(frame.image)
        sink.write(frame, sink.prepare(frame, frame.image))
    sink.close()
    source.close()
    with av.open(str(sink.commit())) as out:
        for image, written in zip(images, out.decode(video=0), strict=True):
            error = np.abs(written.to_ndarray(format="bgr24").astype(int) - image).max(2)
            assert np.median(error) <= 2 and np.percentile(error, 99) <= 12  # swapped colours: 30 and more


def test_variable_frame_rate_and_audio_round_trip(tmp_path, backend):
    clip = write_clip(tmp_path / "vfr.mp4", frames=30, vfr=True, audio=True)
    predict_video(backend, clip, tmp_path / "out.mp4")
    out, source = read_video(tmp_path / "out.mp4"), read_video(clip)
    assert out["times"] == source["times"]  # gaps of 1/30 s and 1/10 s kept, not resampled to a nominal rate
    assert out["streams"] == [("video", "h264"), ("audio", "aac")]
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(clip)  # copied, every packet at its time


def test_other_codecs_and_containers(tmp_path, backend):
    clip = write_clip(tmp_path / "a.mp4", frames=8, audio=True)
    predict_video(backend, clip, tmp_path / "out.mkv", codec="mpeg4")  # MPEG-4 Part 2 takes a millisecond time base
    out = read_video(tmp_path / "out.mkv")
    assert out["streams"] == [("video", "mpeg4"), ("audio", "aac")]
    # Matroska stores milliseconds and no negative time: the AAC priming packet (-64 ms) shifts sound and picture alike.
    shift = audio_packets(tmp_path / "out.mkv")[0] - audio_packets(clip)[0]
    expected = [float(t) + shift for t in read_video(clip)["times"]]
    assert [float(t) for t in out["times"]] == pytest.approx(expected, abs=1e-3)
    predict_video(backend, clip, tmp_path / "out.webm", codec="libvpx-vp9")  # WebM holds no AAC: no sound, warned
    assert read_video(tmp_path / "out.webm")["streams"] == [("video", "vp9")]


def test_odd_frame_sizes_are_cropped_to_even_for_yuv420p(tmp_path, backend):
    clip = write_clip(tmp_path / "odd.mkv", frames=5, size=(161, 121))
    predict_video(backend, clip, tmp_path / "out.mp4")
    assert read_video(tmp_path / "out.mp4")["size"] == (160, 120)


@pytest.mark.parametrize(
    "out, codec, message",
    [
        ("o.gif", "libx264", "unsupported output video suffix '.gif'"),
        ("o.mp4", "nope", "FFmpeg has no encoder 'nope'"),
        ("o.mp4", "aac", "'aac' encodes audio, not video"),
        ("o.webm", "libx264", "'webm' format does not support 'libx264' codec"),
    ],
)
def test_bad_outputs_are_refused_before_any_work(tmp_path, out, codec, message):
    with pytest.raises(VideoError, match=message) as error:
        check_output(tmp_path / out, codec)
    assert str(error.value).startswith(str(tmp_path / out))
    assert not list(tmp_path.iterdir())
