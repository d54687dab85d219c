"""One reader and one rule set for COCO JSON: training and scoring accept the same files, fail with the same error."""

import json

import pytest

from cspdet.data.coco import cache_path, load_coco
from cspdet.data.coco_format import CocoFormatError, check_instances
from cspdet.eval import load_annotations

VALID = {
    "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50}],
    "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0, "area": 12}],
    "categories": [{"id": 3, "name": "cat"}],
}
BROKEN = {  # what used to differ between training and scoring, and a few of each rule
    "no area": ('"area": 12', '"extra": 12', None),
    "iscrowd 2": ('"iscrowd": 0', '"iscrowd": 2', "annotations[0] (id 1) 'iscrowd' must be 0 or 1, got 2"),
    "negative width": ("[1, 2, 3, 4]", "[1, 2, -3, 4]", "annotations[0] (id 1) 'bbox' must be [x, y, width, height]"),
    "segmentation syntax": ('"area": 12', '"area": 12, "segmentation": [[1, 2,, 3]]', "invalid JSON"),
    "escaping file": ('"a.jpg"', '"../a.jpg"', "images[0] (id 7) 'file_name' must be a relative path"),
    "float id": ('"image_id": 7', '"image_id": 7.0', "annotations[0] (id 1) 'image_id' must be a 64-bit integer"),
    "huge id": ('"id": 7', '"id": 99999999999999999999', "images[0] 'id' must be a 64-bit integer"),
    "infinite area": ('"area": 12', '"area": Infinity', "annotations[0] (id 1) 'area' must be a finite number >= 0"),
    "surrogate": ('"cat"', '"\\ud800"', "categories[0] (id 3) 'name' must be a string of Unicode text"),
    "no categories": ('"categories": [{"id": 3, "name": "cat"}]', '"categories": []', "'categories' is empty"),
    "too deep": ('"area": 12', '"area": 12, "x": ' + "[" * 100000 + "]" * 100000, "invalid JSON"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_training_and_scoring_read_alike(tmp_path, name):
    old, new, message = BROKEN[name]
    text = json.dumps(VALID)
    assert old in text
    path = tmp_path / "instances.json"
    path.write_text(text.replace(old, new, 1))
    if message is None:
        assert load_coco(path).counts["no_area"] == 1
        assert load_annotations(path).dataset["annotations"][0]["area"] == 12
        return
    with pytest.raises(CocoFormatError) as training:
        load_coco(path)
    with pytest.raises(CocoFormatError) as scoring:
        load_annotations(path)
    assert str(training.value) == str(scoring.value) and str(training.value).startswith(f"{path}: {message}")
    assert not cache_path(path).exists()


def test_numpy_values_from_python_callers_are_numbers():
    import numpy as np

    d = json.loads(json.dumps(VALID))
    d["annotations"][0]["bbox"] = list(np.array([1.0, 2.0, 3.0, 4.0]))
    d["annotations"][0]["image_id"] = np.int64(7)
    assert check_instances(d, "d").boxes.tolist() == [[1, 2, 3, 4]]
    d["annotations"][0]["iscrowd"] = np.bool_(True)
    with pytest.raises(CocoFormatError, match="'iscrowd' must be 0 or 1, got np.True_"):
        check_instances(d, "d")
