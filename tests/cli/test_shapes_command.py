"""`cspdet shapes`: the synthetic dataset and video, written where asked."""

import json

from helpers import cspdet


def test_dataset_and_video(tmp_path):
    out = cspdet("shapes", "dataset", str(tmp_path / "ds"), "--train", "4", "--val", "2", "--size", "64").stdout
    assert out.splitlines()[-1] == str(tmp_path / "ds")  # after the progress bars
    annotations = json.loads((tmp_path / "ds" / "annotations" / "instances_train.json").read_text())
    assert len(annotations["images"]) == 4 and len(list((tmp_path / "ds" / "images" / "val").iterdir())) == 2
    video = cspdet("shapes", "video", str(tmp_path / "v.mp4"), "--frames", "5", "--width", "64", "--height", "48")
    assert video.stdout.splitlines()[-1] == str(tmp_path / "v.mp4") and (tmp_path / "v.mp4").stat().st_size > 0
