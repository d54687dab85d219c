"""Detections files read back and compared within the tolerances cspdet promises against `yolo predict`."""

import json

import numpy as np

from cspdet.video.detections import mismatched_frames, read_detections, read_yolo_labels, same_detections


def test_detections_compare_within_a_pixel_and_a_thousandth():
    a = np.array([[0, 0, 10, 10, 0.9, 1], [5, 5, 20, 20, 0.5, 2]])
    assert same_detections(a, a[::-1]) and not same_detections(a, a[:1])
    assert same_detections(a, a + [0, 0, 0.9, 0, 0.0009, 0])
    assert not same_detections(a, a + [0, 0, 2, 0, 0, 0]) and not same_detections(a, a + [0, 0, 0, 0, 0, 1])
    assert mismatched_frames([a, a], [a[::-1]]) == [1]


def test_json_lines_and_yolo_labels_read_into_pixel_boxes(tmp_path):
    rows = [{"frame": 0, "t": 0.5, "boxes": [[10.0, 20.0, 50.0, 60.0, 0.9, 3]]}, {"frame": 1, "t": 0.54, "boxes": []}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    ours = read_detections(tmp_path / "d.jsonl")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "clip_1.txt").write_text("3 0.3 0.4 0.4 0.4 0.9\n")  # class, xywh normalised, score
    theirs = read_yolo_labels(tmp_path / "labels", "clip", 2, (100, 100))
    assert [len(f) for f in ours] == [len(f) for f in theirs] == [1, 0] and mismatched_frames(ours, theirs) == []
