"""COCO JSON parsing: class order, crowd, clipping, backgrounds, every bad input, and the content-keyed cache."""

import json
import os

import numpy as np
import pytest
from helpers.coco_files import coco_json

from cspdet.data.coco import CocoFormatError, cache_path, load_coco

IMAGES = [
    {"id": 7, "file_name": "a.jpg", "width": 100, "height": 50},
    {"id": 3, "file_name": "sub/b.jpg", "width": 40, "height": 40},
    {"id": 9, "file_name": "empty.jpg", "width": 10, "height": 10},
]


def test_classes_follow_sorted_category_ids(tmp_path):
    annotations = [
        {"image_id": 7, "category_id": 90, "bbox": [10, 10, 20, 10]},
        {"image_id": 7, "category_id": 3, "bbox": [0, 0, 50, 50]},
        {"image_id": 3, "category_id": 17, "bbox": [10, 20, 10, 10]},
    ]
    index = load_coco(coco_json(tmp_path / "a.json", IMAGES, annotations))
    assert index.names.tolist() == ["cat", "dog", "zebra"]
    assert index.category_ids.tolist() == [3, 17, 90]
    cls, boxes = index.labels(0)  # image id 7, in JSON order
    assert cls[:, 0].tolist() == [2, 0]
    np.testing.assert_allclose(boxes, [[0.2, 0.3, 0.2, 0.2], [0.25, 0.5, 0.5, 1.0]], atol=1e-6)
    cls, boxes = index.labels(1)
    assert cls.tolist() == [[1]] and cls.dtype == np.float32
    np.testing.assert_allclose(boxes, [[0.375, 0.625, 0.25, 0.25]], atol=1e-6)
    assert index.image_ids.tolist() == [7, 3, 9] and index.files.tolist() == ["a.jpg", "sub/b.jpg", "empty.jpg"]


def test_crowd_clipping_dropping_and_backgrounds(tmp_path):
    annotations = [
        {"image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 10]},  # kept
        {"image_id": 7, "category_id": 3, "bbox": [0, 0, 100, 50], "iscrowd": 1},  # crowd: not a target
        {"image_id": 7, "category_id": 17, "bbox": [90, -10, 30, 30]},  # clipped to [90, 0, 10, 20]
        {"image_id": 3, "category_id": 17, "bbox": [50, 50, 10, 10]},  # outside: dropped
        {"image_id": 3, "category_id": 17, "bbox": [5, 5, 0, 10]},  # no width: dropped
        {"image_id": 3, "category_id": 90, "bbox": [5, 5, 10, 10], "iscrowd": 1},  # crowd only: background
    ]
    index = load_coco(coco_json(tmp_path / "a.json", IMAGES, annotations))
    assert index.counts == {
        "images": 3, "boxes": 2, "crowd": 2, "clipped": 1, "dropped": 2, "backgrounds": 2, "no_area": 0
    }  # fmt: skip
    cls, boxes = index.labels(0)
    assert cls[:, 0].tolist() == [0, 1]
    np.testing.assert_allclose(boxes[1], [0.95, 0.2, 0.1, 0.4], atol=1e-6)
    for i in (1, 2):
        cls, boxes = index.labels(i)
        assert cls.shape == (0, 1) and boxes.shape == (0, 4)
    assert "2 crowd" in index.summary() and "2 backgrounds" in index.summary()


def test_segmentation_is_skipped_but_the_rest_is_read(tmp_path):
    annotations = [
        {"image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 10], "segmentation": [[10, 10, 30, 10, 30, 20]]},
        {
            "image_id": 7,
            "category_id": 17,
            "bbox": [1, 1, 2, 2],
            "iscrowd": 1,
            "segmentation": {"counts": "a1b2\\\\c", "size": [50, 100]},
        },  # fmt: skip
    ]
    index = load_coco(coco_json(tmp_path / "a.json", IMAGES, annotations))
    assert index.counts["boxes"] == 1 and index.counts["crowd"] == 1


def _bad(tmp_path, edit, field):
    """Write a valid JSON, break it with ``edit``; the error names the file and ``field``; no cache is left."""
    d = {
        "images": [dict(im) for im in IMAGES],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0}],
        "categories": [{"id": 3, "name": "cat"}],
    }
    edit(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(CocoFormatError) as e:
        load_coco(path)
    assert str(path) in str(e.value) and field in str(e.value)
    assert not cache_path(path).exists() and list(tmp_path.iterdir()) == [path]
    return str(e.value)


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_missing_top_level_key(tmp_path, key):
    _bad(tmp_path, lambda d: d.pop(key), f"'{key}'")


@pytest.mark.parametrize("bbox", [[1, 2, 3], [1, 2, 3, 4, 5], [1, "2", 3, 4], [1, None, 3, 4], "1 2 3 4", None])
def test_bad_bbox(tmp_path, bbox):
    message = _bad(tmp_path, lambda d: d["annotations"][0].update(bbox=bbox), "'bbox'")
    assert "annotations[0] (id 1)" in message


def test_nan_bbox(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(
        '{"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}], "categories": [{"id": 1, "name": "a"}],'
        ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, NaN, 2, 2]}]}'
    )
    with pytest.raises(CocoFormatError, match=r"'bbox' must be \[x, y, width, height\]: 4 finite .*got \[1, nan"):
        load_coco(path)


def test_missing_bbox(tmp_path):
    _bad(tmp_path, lambda d: d["annotations"][0].pop("bbox"), "has no 'bbox'")


def test_unknown_category(tmp_path):
    message = _bad(tmp_path, lambda d: d["annotations"][0].update(category_id=5), "'category_id' 5 is not in")
    assert "annotations[0]" in message


def test_duplicate_image_ids(tmp_path):
    message = _bad(tmp_path, lambda d: d["images"][2].update(id=7), "'id' 7 is a duplicate")
    assert "images[2]" in message and "images[0]" in message


def test_duplicate_file_names(tmp_path):
    _bad(tmp_path, lambda d: d["images"][1].update(file_name="a.jpg"), "'file_name' 'a.jpg' is a duplicate")


def test_annotation_of_unknown_image(tmp_path):
    _bad(tmp_path, lambda d: d["annotations"][0].update(image_id=8), "'image_id' 8 is not in 'images'")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("width", 0, "images[1] (id 3) 'width' must be a number > 0 and below 2**31, got 0"),
        ("height", "40", "images[1] (id 3) 'height' must be a number > 0 and below 2**31, got '40'"),
        ("height", float("inf"), "images[1] (id 3) 'height' must be a number > 0 and below 2**31, got inf"),
        ("id", "7", "images[1] 'id' must be a 64-bit integer, got '7'"),
        ("id", True, "images[1] 'id' must be a 64-bit integer, got True"),
        ("id", 2**64, "images[1] 'id' must be a 64-bit integer, got 18446744073709551616"),
        ("file_name", "", "images[1] (id 3) 'file_name' must be a relative path of Unicode text inside"),
    ],
)
def test_bad_image_field(tmp_path, field, value, message):
    _bad(tmp_path, lambda d: d["images"][1].update({field: value}), message)


ESCAPES = ["../b.jpg", "sub/../../b.jpg", "/etc/b.jpg", "C:\\b.jpg", "..\\b.jpg", "a\0.jpg", ".", "\ud800.jpg"]


@pytest.mark.parametrize("name", ESCAPES)
def test_file_name_outside_the_image_folder(tmp_path, name):
    message = _bad(tmp_path, lambda d: d["images"][1].update(file_name=name), "images[1] (id 3) 'file_name' must be")
    assert repr(name) in message


def test_file_names_are_compared_normalised(tmp_path):
    _bad(tmp_path, lambda d: d["images"][1].update(file_name="./a.jpg"), "images[1] (id 3) 'file_name' 'a.jpg' is a")


def test_float_ids_are_rejected(tmp_path):
    _bad(tmp_path, lambda d: d["annotations"][0].update(image_id=7.0), "'image_id' must be a 64-bit integer, got 7.0")


def test_crowd_must_be_zero_or_one(tmp_path):
    message = _bad(tmp_path, lambda d: d["annotations"][0].update(iscrowd=2), "'iscrowd' must be 0 or 1, got 2")
    assert message.endswith("bad.json: annotations[0] (id 1) 'iscrowd' must be 0 or 1, got 2")


@pytest.mark.parametrize("bbox", [[1, 2, -3, 4], [1, 2, 3, -0.5], [1, 2, 3, 2**31], [1e300, 2, 3, 4]])
def test_negative_or_huge_box_sizes_fail(tmp_path, bbox):
    _bad(tmp_path, lambda d: d["annotations"][0].update(bbox=bbox), "(id 1) 'bbox' must be [x, y, width, height]")


@pytest.mark.parametrize("area", [-1, "9", float("nan"), None])
def test_bad_area(tmp_path, area):
    _bad(tmp_path, lambda d: d["annotations"][0].update(area=area), "annotations[0] (id 1) 'area' must be a finite")


@pytest.mark.parametrize("section", ["images", "categories"])
def test_empty_sections(tmp_path, section):
    _bad(tmp_path, lambda d: d.update({section: []}), f"'{section}' is empty")


def test_missing_area_is_counted(tmp_path):
    annotations = [{"image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4]}] * 3
    d = {"images": IMAGES, "annotations": annotations, "categories": [{"id": 3, "name": "cat"}]}
    (tmp_path / "a.json").write_text(json.dumps(d))
    index = load_coco(tmp_path / "a.json")
    assert index.counts["no_area"] == 3 and "3 without 'area' (taken from the box)" in index.summary()


def test_invalid_json_names_the_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(CocoFormatError, match=r"broken.json: invalid JSON: .*line 2 column 18"):
        load_coco(path)
    assert list(tmp_path.iterdir()) == [path]


def test_not_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[]")
    with pytest.raises(CocoFormatError, match="list.json: the top level must be an object"):
        load_coco(path)


def test_cache_hit_and_invalidation(tmp_path):
    annotations = [{"image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 10]}]
    path = coco_json(tmp_path / "a.json", IMAGES, annotations)
    first = load_coco(path)
    cached = cache_path(path)
    stamp = cached.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # touched, same content: still a hit
    second = load_coco(path)
    assert cached.stat().st_mtime_ns == stamp and second.key == first.key
    assert second.names.tolist() == first.names.tolist() and second.counts == first.counts
    np.testing.assert_array_equal(second.boxes, first.boxes)

    annotations.append({"image_id": 3, "category_id": 3, "bbox": [0, 0, 4, 4]})  # edited: parsed again
    coco_json(path, IMAGES, annotations)
    third = load_coco(path)
    assert third.key != first.key and third.counts["boxes"] == 2
    assert cached.stat().st_mtime_ns != stamp and load_coco(path).key == third.key


def test_failed_parse_leaves_the_old_cache_unused(tmp_path):
    path = coco_json(tmp_path / "a.json", IMAGES, [{"image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2]}])
    load_coco(path)
    path.write_text(path.read_text().replace('"image_id": 7', '"image_id": 70'))
    with pytest.raises(CocoFormatError, match="'image_id' 70 is not in 'images'"):
        load_coco(path)


def test_unreadable_cache_is_replaced(tmp_path):
    path = coco_json(tmp_path / "a.json", IMAGES, [{"image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2]}])
    cache_path(path).write_bytes(b"PK\x03\x04 truncated")
    assert load_coco(path).counts["boxes"] == 1
    assert load_coco(path).key == load_coco(path, cache=False).key and cache_path(path).stat().st_size > 100


@pytest.mark.parametrize(
    "segmentation",
    [[], {}, [[]], "x", 5, None, True, [[1, 2, 3]], {"counts": [1, 2]}, {"counts": "a\\\\b", "size": [1]}, [[[[1]]]]],
)
def test_unusual_segmentations_are_never_read(tmp_path, segmentation):
    """Whatever a 'segmentation' holds (empty, RLE, a wrong type), the boxes train as without it."""
    annotations = [{"image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 10]}, {"image_id": 3, "category_id": 17,
                   "bbox": [1, 1, 2, 2], "iscrowd": 1}]  # fmt: skip
    plain = load_coco(coco_json(tmp_path / "plain.json", IMAGES, annotations), cache=False)
    unusual = [dict(a, segmentation=segmentation) for a in annotations]
    index = load_coco(coco_json(tmp_path / "unusual.json", IMAGES, unusual), cache=False)
    assert index.counts == plain.counts
    for field in ("names", "category_ids", "image_ids", "files", "sizes", "cls", "boxes", "offsets"):
        np.testing.assert_array_equal(getattr(index, field), getattr(plain, field))
