"""cspdet.eval against pycocotools' COCOeval, and its handling of bad files."""

import copy
import json

import pytest
from helpers.coco_cases import CASES, edge_case, one_per_class

from cspdet.eval import METRIC_KEYS, CocoFormatError, evaluate, load_annotations, save_json, score_files
from cspdet.eval.reference import pycocotools_scores


@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_pycocotools(case, tmp_path):
    annotations, predictions = CASES[case]()
    reference, reference_per_class = pycocotools_scores(annotations, predictions)
    save_json(annotations, tmp_path / "a.json")
    save_json(predictions, tmp_path / "p.json")
    metrics = score_files(tmp_path / "a.json", tmp_path / "p.json")
    assert [metrics[k] for k in METRIC_KEYS] == reference.tolist()  # to the last bit
    assert {c["id"]: c["AP"] for c in metrics["per_class"]} == reference_per_class


def test_edge_case_covers_what_it_claims():
    metrics = evaluate(load_annotations(edge_case()[0]), edge_case()[1])
    per_class = {c["name"]: c for c in metrics["per_class"]}
    assert per_class["unseen"]["AP"] == -1 and per_class["unseen"]["instances"] == 0  # no ground truth
    assert per_class["rare"]["AP"] == 0 and per_class["rare"]["instances"] == 1  # ground truth, no detections
    assert per_class["dog"]["instances"] == 2  # crowd regions are not instances
    assert 0 < metrics["AP"] < 1 and all(metrics[k] > 0 for k in ("APs", "APm", "APl"))


def test_ground_truth_as_predictions_scores_one():
    annotations = one_per_class()
    predictions = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in annotations["annotations"]
        if not a["iscrowd"]
    ]
    metrics = evaluate(load_annotations(annotations), predictions)
    assert [metrics[k] for k in METRIC_KEYS] == [1.0] * 12
    assert all(c["AP"] == 1.0 for c in metrics["per_class"])


def test_only_given_images_are_scored():
    annotations, predictions = edge_case()
    full = evaluate(load_annotations(copy.deepcopy(annotations)), copy.deepcopy(predictions))
    subset = evaluate(load_annotations(annotations), predictions, image_ids=[8])
    assert subset["AP"] != full["AP"]
    assert {c["name"]: c["instances"] for c in subset["per_class"]} == {"cat": 1, "dog": 1, "unseen": 0, "rare": 0}


def test_missing_area_is_the_box_area():
    """Many exporters leave 'area' out: it is the box's width x height (as the edge case writes it): equal scores."""
    annotations, predictions = edge_case()
    expected = evaluate(load_annotations(copy.deepcopy(annotations)), copy.deepcopy(predictions))
    for a in annotations["annotations"]:
        del a["area"]
    assert evaluate(load_annotations(annotations), predictions) == expected
    assert [a["area"] for a in annotations["annotations"]] == [a["area"] for a in edge_case()[0]["annotations"]]


def test_no_predictions_scores_zero():
    metrics = evaluate(load_annotations(edge_case()[0]), [])
    assert metrics["AP"] == 0 and metrics["AR100"] == 0


def test_annotation_ids_are_not_trusted():
    """Duplicate or zero annotation ids would corrupt COCOeval's matching; the numbers must not depend on them."""
    annotations, predictions = edge_case()
    expected = evaluate(load_annotations(copy.deepcopy(annotations)), copy.deepcopy(predictions))
    for a in annotations["annotations"]:
        a["id"] = 0
    assert evaluate(load_annotations(annotations), predictions) == expected


def _bad_predictions():
    def edit(change):
        annotations, predictions = edge_case()
        change(predictions)
        return annotations, predictions

    return {
        "unknown image": (
            edit(lambda p: p[5].update(image_id=12345)),
            "predictions[5] 'image_id' 12345 is not in the images of",
            "",
        ),
        "unknown category": (
            edit(lambda p: p[2].update(category_id=8)),
            "predictions[2] 'category_id' 8 is not in the categories of",
            "",
        ),
        "no bbox": (edit(lambda p: p[3].pop("bbox")), "predictions[3] has no 'bbox'", ""),
        "short bbox": (edit(lambda p: p[4].update(bbox=[1, 2, 3])), "predictions[4] 'bbox' must be [x, y, width", ""),
        "negative size": (
            edit(lambda p: p[1].update(bbox=[1, 2, -3, 4])),
            "predictions[1] 'bbox' must be [x, y, width, height]",
            "width and height >= 0, got [1, 2, -3, 4]",
        ),
        "string score": (edit(lambda p: p[6].update(score="0.5")), "predictions[6] 'score' must be a finite", ""),
        "nan score": (edit(lambda p: p[0].update(score=float("nan"))), "predictions[0] 'score' must be a finite", ""),
        "not a list": ((edge_case()[0], {"image_id": 3}), "must be a JSON list of detections", ""),
    }


@pytest.mark.parametrize("name", sorted(_bad_predictions()))
def test_bad_predictions_are_reported(name, tmp_path):
    (annotations, predictions), message, where = _bad_predictions()[name]
    save_json(annotations, tmp_path / "a.json")
    (tmp_path / "p.json").write_text(json.dumps(predictions))  # json.dumps writes NaN as NaN, as some tools do
    with pytest.raises(CocoFormatError) as error:
        score_files(tmp_path / "a.json", tmp_path / "p.json")
    assert str(error.value).startswith(f"{tmp_path / 'p.json'}: ") and message in str(error.value)
    assert where in str(error.value) and ("not in" not in message or str(tmp_path / "a.json") in str(error.value))


def _bad_annotations():
    def edit(change):
        annotations = edge_case()[0]
        change(annotations)
        return annotations

    return {
        "no categories": (edit(lambda a: a.pop("categories")), "missing top-level key 'categories'"),
        "string image id": (edit(lambda a: a["images"][1].update(id="8")), "images[1] 'id' must be a 64-bit integer"),
        "duplicate image": (edit(lambda a: a["images"][1].update(id=3)), "images[1] (id 3) 'id' 3 is a duplicate of"),
        "unknown image": (
            edit(lambda a: a["annotations"][4].update(image_id=7)),
            "annotations[4] (id 14) 'image_id' 7 is not in 'images'",
        ),
        "bad crowd": (
            edit(lambda a: a["annotations"][0].update(iscrowd=2)),
            "annotations[0] (id 10) 'iscrowd' must be 0 or 1, got 2",
        ),
        "negative area": (edit(lambda a: a["annotations"][1].update(area=-1)), "annotations[1] (id 11) 'area' must be"),
        "not an object": (edit(lambda a: a["annotations"].__setitem__(1, [1])), "annotations[1] must be an object"),
        "a list": ([], "the top level must be an object"),
    }


@pytest.mark.parametrize("name", sorted(_bad_annotations()))
def test_bad_annotations_are_reported(name, tmp_path):
    annotations, message = _bad_annotations()[name]
    save_json(annotations, tmp_path / "a.json")
    with pytest.raises(CocoFormatError, match=r"^" + str(tmp_path / "a.json") + ": ") as error:
        load_annotations(tmp_path / "a.json")
    assert message in str(error.value)


def test_unreadable_files_are_reported(tmp_path):
    (tmp_path / "broken.json").write_text('{"images": [')
    with pytest.raises(CocoFormatError, match="broken.json: invalid JSON: Expecting value: line 1 column 13"):
        load_annotations(tmp_path / "broken.json")
    with pytest.raises(CocoFormatError, match="missing.json: file not found"):
        load_annotations(tmp_path / "missing.json")


def test_save_json_is_atomic(tmp_path):
    path = save_json({"AP": 0.5}, tmp_path / "out" / "m.json")
    with pytest.raises(TypeError):
        save_json({"AP": object()}, path)  # fails while writing: the old file stays, no temporary file is left
    assert json.loads(path.read_text()) == {"AP": 0.5} and [p.name for p in path.parent.iterdir()] == ["m.json"]
