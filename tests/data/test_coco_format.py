"""One reader and one rule set for COCO JSON: training and scoring accept the same files, fail with the same error."""

import json

import numpy as np
import pytest

from cspdet.data import coco_format
from cspdet.data.coco import cache_path, load_coco
from cspdet.data.coco_format import CocoFormatError, Instances, check_instances, read_instances
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


def _document() -> dict:
    """A valid file whose strings and extra values look like the structure that the pieces are cut at."""
    images = [{"id": i, "file_name": f'{i}}}, {{"annotations": [.jpg', "width": 64, "height": 48} for i in (5, 9, 2)]
    annotations = [
        {"id": k, "image_id": (5, 9, 2)[k % 3], "category_id": (3, 8)[k % 2], "bbox": [k, 2.5, 10, 7 + k],
         "area": 70.0, "iscrowd": int(k % 5 == 0), "segmentation": [[1, 2, 3, 4, 5, 6]] * (k % 4)}
        for k in range(1, 30)
    ]  # fmt: skip
    annotations[7]["segmentation"] = [list(range(300))]  # a record longer than a piece
    del annotations[4]["area"], annotations[5]["iscrowd"]
    categories = [{"id": 8, "name": '}]}, "annotations": [{'}, {"id": 3, "name": "cat"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def _inside_records(d: dict, **fields) -> dict:
    """``d`` with the '}, {' and '}]' that the cuts look for inside records (a string, and a list of objects), and
    ``fields`` added to a record."""
    d["annotations"][12]["segmentation"] = {"counts": "}, {" * 200 + "}]", "size": [48, 64]}
    d["annotations"][17]["attributes"] = [{"a": 1}, {"b": [{"c": 2}]}]
    d["annotations"][20].update(fields)
    return d


LAYOUTS = {  # name: (text, whether the piece reader reads it; None: either way)
    "compact": (lambda d: json.dumps(d, separators=(",", ":")), True),
    "spaced": (json.dumps, True),
    "indented": (lambda d: json.dumps(d, indent=2), True),
    "annotations first": (lambda d: json.dumps({k: d[k] for k in ("annotations", "categories", "images")}), True),
    "empty annotations": (
        lambda d: json.dumps({**d, "annotations": [], "licenses": [{"id": i} for i in range(99)]}),
        True,
    ),
    "nested key first": (lambda d: json.dumps({"info": {"annotations": [{"a": 1}, {"b": 2}]}, **d}), False),
    "repeated after": (
        lambda d: json.dumps(d)[:-1] + ', "annotations": ' + json.dumps(d["annotations"][:3]) + "}",
        False,
    ),
    "cut marks inside records": (lambda d: json.dumps(_inside_records(d)), None),
    "lone surrogate in a record": (
        lambda d: json.dumps(_inside_records(d, keypoints="\ud800")),
        None,
    ),  # json.loads reads it
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_file_read_piece_by_piece_reads_as_a_whole(tmp_path, monkeypatch, layout):
    """Large files are decoded a piece of their text at a time (or whole where they cannot be cut): the records are
    those of the whole file."""
    monkeypatch.setattr(coco_format, "PIECE", 400)
    cut = []
    decode_pieces = coco_format._decode_pieces
    monkeypatch.setattr(coco_format, "_decode_pieces", lambda f: cut.append(decode_pieces(f)) or cut[-1])
    write, pieces = LAYOUTS[layout]
    text = write(_document())
    path = tmp_path / "instances.json"
    path.write_text(text)
    found, expected = read_instances(path), check_instances(json.loads(text), path)
    for field in Instances.__dataclass_fields__:
        assert np.array_equal(getattr(found, field), getattr(expected, field)), field
    assert pieces is None or bool(cut) == pieces


BAD_RECORDS = {  # annotations of _document() broken: ({record: change}, message)
    "iscrowd 2": ({15: {"iscrowd": 2}}, "annotations[15] (id 16) 'iscrowd' must be 0 or 1, got 2"),
    "negative width": ({15: {"bbox": [1, 2, -3, 4]}}, "annotations[15] (id 16) 'bbox' must be [x, y, width, height]"),
    "unknown image": ({15: {"image_id": 77}}, "annotations[15] (id 16) 'image_id' 77 is not in 'images'"),
    "float id": ({15: {"image_id": 5.0}}, "annotations[15] (id 16) 'image_id' must be a 64-bit integer, got 5.0"),
    "NaN area": ({15: {"area": float("nan")}}, "annotations[15] (id 16) 'area' must be a finite number >= 0, got nan"),
    "two commas": ({15: {"iscrowd": "TWO COMMAS"}}, "invalid JSON: Expecting property name enclosed in double quotes"),
    "not UTF-8": ({15: {"segmentation": "NOT UTF-8"}}, "invalid JSON: 'utf-8' codec can't decode byte 0xff"),
    "not UTF-8, first piece": ({2: {"segmentation": "NOT UTF-8"}}, "invalid JSON: 'utf-8' codec can't decode byte"),
    "NaN after a bad record": (
        {3: {"iscrowd": 2}, 25: {"area": float("nan")}},
        "annotations[3] (id 4) 'iscrowd' must be 0 or 1, got 2",
    ),
    "not UTF-8 after a bad record": (
        {3: {"iscrowd": 2}, 25: {"segmentation": "NOT UTF-8"}},
        "invalid JSON: 'utf-8' codec can't decode byte 0xff",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_RECORDS))
def test_a_file_read_piece_by_piece_fails_as_a_whole(tmp_path, monkeypatch, name):
    """A bad record in the middle of a large file is reported as in a small one, with the same message."""
    changes, message = BAD_RECORDS[name]
    d = _document()
    for k, change in changes.items():
        d["annotations"][k].update(change)
    text = json.dumps(d).encode().replace(b'"TWO COMMAS"', b"0,,").replace(b'"NOT UTF-8"', b'"\xff"')
    path = tmp_path / "instances.json"
    path.write_bytes(text)
    errors = []
    for piece in (400, 1 << 25):  # piece by piece, and whole
        monkeypatch.setattr(coco_format, "PIECE", piece)
        with pytest.raises(CocoFormatError) as error:
            read_instances(path)
        errors.append(str(error.value))
    assert errors[0] == errors[1] and errors[0].startswith(f"{path}: {message}")


LITERALS = {  # json.loads' NaN, Infinity and -Infinity (not JSON, which msgspec refuses) wherever a file has them
    "record": ('[{"id": 1, "image_id"', '[NaN, {"id": 1, "image_id"'),
    "section": ('"annotations": [', '"annotations": NaN, "x": ['),
    "key": ('"name": "cat"', '"name": "cat", NaN: 1'),
    "inside a string": ('"name": "cat"', '"name": "NaN Infinity"'),
    "name": ('"name": "cat"', '"name": NaN'),
    "segmentation": ('"area": 12', '"area": 12, "segmentation": [[1, NaN, -Infinity, Infinity]]'),
    "nested in bbox": ("[1, 2, 3, 4]", "[[NaN], 2, 3, 4]"),
    "id": ('"image_id": 7', '"image_id": -Infinity'),
    "width": ('"width": 100', '"width": NaN'),
    "-NaN": ('"width": 100', '"width": -NaN'),
}


@pytest.mark.parametrize("where", sorted(LITERALS))
def test_json_loads_literals_read_as_json_loads_reads_them(tmp_path, where):
    old, new = LITERALS[where]
    text = json.dumps(VALID)
    assert old in text
    path = tmp_path / "instances.json"
    path.write_text(text.replace(old, new, 1))
    try:
        expected = str(check_instances(json.loads(path.read_text()), path).boxes.tolist())
    except ValueError as e:  # CocoFormatError, or json.loads' own error
        expected = str(e) if isinstance(e, CocoFormatError) else f"{path}: invalid JSON: {e}"
    try:
        found = str(read_instances(path).boxes.tolist())
    except CocoFormatError as e:
        found = str(e)
    assert found == expected
