"""Sources: frames carry the source's own timestamps; bad files fail on opening with the file named and the reason."""

import re
from fractions import Fraction

import cv2
import numpy as np
import pytest
from helpers.video import TIME_BASE, frame_times, write_clip

from cspdet.data.shapes import video_frames
from cspdet.video import VideoError, find_sources, is_live, open_source


def test_variable_frame_rate_timestamps_come_through(tmp_path):
    clip = write_clip(tmp_path / "vfr.mp4", frames=30, vfr=True, audio=True)
    source = open_source(clip)
    assert (source.size, source.frames, source.live, source.audio.codec_context.name) == ((320, 240), 30, False, "aac")
    audio = []
    frames = list(source.read(on_audio=audio.append))
    assert len(audio) > 20 and {p.stream.type for p in audio} == {"audio"}
    source.close()
    assert [f.index for f in frames] == list(range(30))
    assert [f.pts * source.time_base for f in frames] == [t * TIME_BASE for t in frame_times(30, 30, vfr=True)]
    assert [f.time for f in frames] == [float(f.pts * source.time_base) for f in frames]
    assert frames[0].time == 0.5 and frames[3].time - frames[2].time == pytest.approx(3 / 30)
    assert frames[5].image.shape == (240, 320, 3) and frames[5].image.dtype == np.uint8


def test_frames_decode_as_opencv_decodes_them(tmp_path):
    clip = write_clip(tmp_path / "a.mp4", frames=10)
    capture = cv2.VideoCapture(str(clip))
    for frame in open_source(clip).read():
        ok, expected = capture.read()
        assert ok and np.array_equal(frame.image, expected)  # so detections can equal `yolo predict`'s


def _zero_frame_avi(path):
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240)).release()


def _unknown_codec_avi(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for frame, _ in video_frames(5, (320, 240)):
        writer.write(frame)
    writer.release()
    path.write_bytes(path.read_bytes().replace(b"MJPG", b"QQQQ"))  # a codec FFmpeg does not know


def _undecodable_mp4(path):
    data = bytearray(write_clip(path, frames=20).read_bytes())
    start, end = data.find(b"mdat") + 4, data.find(b"moov") - 4  # PyAV writes the index (moov) last
    data[start:end] = bytes(end - start)
    path.write_bytes(data)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("text", "FFmpeg cannot open it as a video (Invalid data found when processing input)"),
        ("mp4 cut before its index", "FFmpeg cannot open it as a video"),
        ("zero frames", "the video has no frames"),
        ("unknown codec", "FFmpeg has no decoder for its video codec"),
        ("undecodable frames", "none of its 20 frames could be decoded (19 corrupt packets)"),
    ],
)
def test_bad_sources_fail_on_opening_with_the_reason(tmp_path, case, message):
    source = tmp_path / ("bad.avi" if case in ("zero frames", "unknown codec") else "bad.mp4")
    if case == "text":
        source.write_text("not a video\n")
    elif case == "mp4 cut before its index":
        clip = write_clip(tmp_path / "whole.mp4", frames=10)
        source.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    elif case == "zero frames":
        _zero_frame_avi(source)
    elif case == "unknown codec":
        _unknown_codec_avi(source)
    elif case == "undecodable frames":
        _undecodable_mp4(source)
    with pytest.raises(VideoError, match=re.escape(message)) as error:
        open_source(source)
    assert str(error.value).startswith(f"{source}: ")


def test_missing_camera_and_live_defaults(tmp_path):
    with pytest.raises(VideoError, match="^9: cannot open this camera$"):
        open_source(9)  # no camera 9 here
    assert [is_live(s) for s in ("0", "rtsp://cam/1", "tcp://127.0.0.1:5000", "file:///a.mp4", "a.mp4")] == [
        True, True, True, False, False,
    ]  # fmt: skip
    clip = write_clip(tmp_path / "a.mp4", frames=3)
    assert open_source(clip.as_uri()).live is False
    assert open_source(clip, live=True).live is True


def test_live_file_is_read_at_its_own_pace(tmp_path):
    clip = write_clip(tmp_path / "a.mp4", frames=12, fps=20)
    frames = list(open_source(clip, live=True).read())
    elapsed = frames[-1].captured - frames[0].captured
    assert elapsed == pytest.approx(11 / 20, abs=0.15)  # as a camera delivers them, not as fast as they decode


def test_find_sources(tmp_path):
    (tmp_path / "b.mp4").write_bytes(b"")
    (tmp_path / "a.MKV").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert find_sources(tmp_path) == [str(tmp_path / "a.MKV"), str(tmp_path / "b.mp4")]
    assert find_sources("0") == ["0"] and find_sources("rtsp://cam/1") == ["rtsp://cam/1"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="folder contains no videos"):
        find_sources(tmp_path / "empty")
    with pytest.raises(VideoError, match="no such file or folder"):
        find_sources(tmp_path / "nope.mp4")
    assert Fraction(open_source(write_clip(tmp_path / "c.mp4", frames=2, fps=25)).rate) == 25
