"""COCO-format data YAMLs through ultralytics' own check_det_dataset and build_yolo_dataset."""

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO
from helpers.coco_files import ONE_FOLDER, coco_json, tree, write_coco_dataset, write_image, write_one_folder_dataset
from PIL import Image
from ultralytics.cfg import get_cfg
from ultralytics.data import build_yolo_dataset
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import check_det_dataset
from ultralytics.utils import LOGGER

from cspdet.data.dataset import COCODataset

pytestmark = pytest.mark.compat("COCO")


@pytest.fixture
def coco_dataset(tmp_path):
    """Data YAML of a fresh small COCO-layout dataset (8 train, 4 val images of 64x64)."""
    return write_coco_dataset(tmp_path / "coco")


def build(data: dict, split: str = "train", **overrides):
    cfg = get_cfg(overrides={"imgsz": 64, **overrides})
    return build_yolo_dataset(cfg, data[split], 4, data, mode="val", stride=32)


@pytest.fixture
def log_lines():
    """Collect the messages that ultralytics' LOGGER emits."""
    lines = []

    class Collect:
        level = 0

        def handle(self, record):
            lines.append(record.getMessage())

    handler = Collect()
    LOGGER.addHandler(handler)
    yield lines
    LOGGER.removeHandler(handler)


def test_data_yaml_names_and_annotations(coco_dataset):
    data = check_det_dataset(str(coco_dataset))
    assert data["names"] == {0: "cat", 1: "dog", 2: "zebra"} and data["nc"] == 3
    root = coco_dataset.parent
    assert data["annotations"] == {s: str(root / "annotations" / f"instances_{s}.json") for s in ("train", "val")}


def test_dataset_labels_from_json(coco_dataset, log_lines):
    data = check_det_dataset(str(coco_dataset))
    dataset = build(data)
    assert type(dataset) is COCODataset and len(dataset) == 8
    index = json.loads((coco_dataset.parent / "annotations/instances_train.json").read_text())
    first = index["annotations"][0]  # image 101, category 3 -> class 0
    x, y, w, h = first["bbox"]
    label = dataset.labels[0]
    assert label["im_file"].endswith("images/train/001.jpg") and label["shape"] == (64, 64)
    assert label["cls"][0, 0] == 0
    np.testing.assert_allclose(label["bboxes"][0], [(x + w / 2) / 64, (y + h / 2) / 64, w / 64, h / 64], atol=1e-6)
    assert len(dataset.labels[-1]["cls"]) == 0  # the background image is kept
    assert any("instances_train.json: 8 images, 14 boxes, 0 crowd" in line and "1 backgrounds" in line
               and "0 missing images, 0 corrupt images" in line for line in log_lines)  # fmt: skip
    sample = dataset[0]
    assert sample["img"].shape[1:] == (64, 64) and len(sample["cls"]) == 2


def test_missing_and_corrupt_images_are_skipped(coco_dataset, log_lines):
    images = coco_dataset.parent / "images" / "train"
    (images / "002.jpg").unlink()
    (images / "003.jpg").write_bytes(b"not an image")
    data = check_det_dataset(str(coco_dataset))
    dataset = build(data)
    assert len(dataset) == 6 and not any(f.endswith(("002.jpg", "003.jpg")) for f in dataset.im_files)
    assert any("1 missing images, 1 corrupt images" in line for line in log_lines)
    assert any("002.jpg: image missing, skipped" in line for line in log_lines)
    assert any("003.jpg: corrupt image, skipped" in line for line in log_lines)
    log_lines.clear()
    assert len(build(data)) == 6  # from the scan cache, with the same report
    assert any("1 missing images, 1 corrupt images" in line for line in log_lines)


def test_scan_cache_follows_the_images(coco_dataset):
    data = check_det_dataset(str(coco_dataset))
    assert len(build(data)) == 8
    (coco_dataset.parent / "images" / "train" / "004.jpg").unlink()
    assert len(build(data)) == 7


def test_names_must_match_the_json(coco_dataset):
    coco_dataset.write_text(coco_dataset.read_text() + "names: [a, b, c]\n")
    with pytest.raises(ValueError, match=r"data.yaml: 'names' \['a', 'b', 'c'\] differ from the categories"):
        check_det_dataset(str(coco_dataset))


def test_missing_json_names_the_field(coco_dataset):
    (coco_dataset.parent / "annotations" / "instances_val.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"data.yaml: 'annotations: val:' file .*instances_val.json not found"):
        check_det_dataset(str(coco_dataset))


def test_annotations_must_be_a_mapping(coco_dataset):
    text = coco_dataset.read_text().split("annotations:")[0]
    coco_dataset.write_text(text + "annotations: annotations/instances_train.json\n")
    with pytest.raises(TypeError, match="'annotations' must map splits to COCO JSON files"):
        check_det_dataset(str(coco_dataset))


def test_bad_json_is_reported_through_the_data_yaml(coco_dataset):
    (coco_dataset.parent / "annotations" / "instances_val.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match="instances_val.json: missing top-level key 'annotations'"):
        check_det_dataset(str(coco_dataset))


def test_split_without_json_reads_yolo_labels(tiny_dataset):
    data = check_det_dataset(str(tiny_dataset))
    assert "annotations" not in data and type(build(data)) is COCODataset and len(build(data).labels) == 8


def _formats(folder):
    """One image per loading case, 48x32 (w x h) as stored, with a box in the top-left quarter."""
    folder.mkdir(parents=True)
    base = np.zeros((32, 48, 3), np.uint8)
    base[:16, :24] = (40, 200, 90)
    rgb = Image.fromarray(base[..., ::-1].copy())
    rgb.convert("L").save(folder / "gray.jpg")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise on display: loads as 32x48
    rgb.save(folder / "rotated.jpg", exif=exif)
    return ["gray.jpg", "cmyk.jpg", "alpha.png", "rotated.jpg"]


def test_image_formats_load_as_ultralytics_loads_them(tmp_path):
    """Grayscale, CMYK, RGBA PNG, EXIF-rotated JPEG: same pixels, shapes and boxes as YOLODataset with .txt labels."""
    names = _formats(tmp_path / "images" / "train")
    images, annotations = [], []
    for i, name in enumerate(names, 1):
        w, h = (32, 48) if name == "rotated.jpg" else (48, 32)  # the JSON describes the image as displayed
        images.append({"id": i, "file_name": name, "width": w, "height": h})
        annotations.append({"image_id": i, "category_id": 3, "bbox": [0, 0, w / 2, h / 2]})
        (tmp_path / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / "train" / name).with_suffix(".txt").write_text("0 0.25 0.25 0.5 0.5\n")
    coco_json(tmp_path / "instances_train.json", images, annotations, [{"id": 3, "name": "a"}])
    common = f"path: {tmp_path}\ntrain: images/train\nval: images/train\n"
    (tmp_path / "coco.yaml").write_text(common + "annotations: {train: instances_train.json}\n")
    (tmp_path / "yolo.yaml").write_text(common + "names: [a]\n")
    ours = build(check_det_dataset(str(tmp_path / "coco.yaml")))
    theirs = build(check_det_dataset(str(tmp_path / "yolo.yaml")))
    assert type(theirs) is COCODataset and isinstance(theirs, YOLODataset) and not theirs.json_file
    by_file = {lb["im_file"]: i for i, lb in enumerate(theirs.labels)}
    assert sorted(by_file) == sorted(ours.im_files) and len(ours) == 4
    for i, label in enumerate(ours.labels):
        j = by_file[label["im_file"]]
        assert label["shape"] == theirs.labels[j]["shape"]
        np.testing.assert_allclose(label["bboxes"], theirs.labels[j]["bboxes"], atol=1e-6)
        np.testing.assert_array_equal(ours.load_image(i)[0], theirs.load_image(j)[0])
    rotated = ours.labels[ours.im_files.index(str(tmp_path / "images/train/rotated.jpg"))]
    assert rotated["shape"] == (48, 32)


def test_shapes_yaml_generates_its_dataset(tmp_path):
    """The bundled shapes.yaml builds its COCO dataset on first use, offline, through its download script."""
    from cspdet.data import find_bundled

    text = find_bundled("shapes.yaml").read_text()
    root = tmp_path / "shapes"
    (tmp_path / "shapes.yaml").write_text(text.replace("path: cspdet-shapes-v1", f"path: {root}"))
    data = check_det_dataset(str(tmp_path / "shapes.yaml"))
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle", 3: "star", 4: "cross"}
    assert len(list((root / "images" / "val").iterdir())) == 160
    dataset = build(data, "val")
    assert len(dataset) == 160 and sum(len(lb["cls"]) for lb in dataset.labels) > 400


def test_copied_dataset_rescans_and_reuses_nothing_stale(tmp_path):
    data_yaml = write_coco_dataset(tmp_path / "a", n_train=4, n_val=2)
    assert len(build(check_det_dataset(str(data_yaml)))) == 4
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = tmp_path / "b" / "data.yaml"
    copy.write_text(copy.read_text().replace(str(tmp_path / "a"), str(tmp_path / "b")))
    dataset = build(check_det_dataset(str(copy)))
    assert all(f.startswith(str(tmp_path / "b")) for f in dataset.im_files)
    write_image(tmp_path / "b" / "images" / "train" / "001.jpg", 64, 64)  # unreadable content would be rescanned
    cv2.imwrite(str(tmp_path / "b" / "images" / "train" / "002.jpg"), np.zeros((5, 5, 3), np.uint8))  # too small
    assert len(build(check_det_dataset(str(copy)))) == 3


def test_bundled_data_yaml_by_bare_name(tmp_path, monkeypatch):
    """`data=shapes.yaml` finds cspdet's bundled YAML (ultralytics has none of that name); its dataset lies under
    ultralytics' datasets_dir, where it is reported missing at first and read once written."""
    from ultralytics.data import utils

    from cspdet.data import find_bundled
    from cspdet.data.shapes import write_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(utils, "DATASETS_DIR", tmp_path / "datasets")  # ultralytics' `yolo settings datasets_dir`
    root = tmp_path / "datasets" / "cspdet-shapes-v1"
    with pytest.raises(FileNotFoundError) as missing:
        check_det_dataset("shapes.yaml", autodownload=False)
    where = f"Dataset '{find_bundled('shapes.yaml')}' images not found.*missing path '{tmp_path / 'datasets'}"
    assert re.search(where, str(missing.value))  # the dataset's folder (8.3.0: datasets_dir, shortened)
    write_dataset(root, train=2, val=3, size=32)
    data = check_det_dataset("shapes.yaml", autodownload=False)
    assert data["yaml_file"] == str(find_bundled("shapes.yaml")) and data["path"] == root
    assert data["nc"] == 5 and data["annotations"]["val"] == str(root / "annotations" / "instances_val.json")
    assert len(build(data, "val")) == 3


def test_bundled_coco_yaml_reads_the_official_layout(tmp_path):
    """datasets/coco.yaml on a miniature of the official archives' layout (train2017/, val2017/, annotations/)."""
    from cspdet.data import find_bundled

    for split in ("train2017", "val2017"):
        write_image(tmp_path / split / "000000000001.jpg", 64, 48, [[4, 4, 20, 10]])
        image = {"id": 1, "file_name": "000000000001.jpg", "width": 64, "height": 48}
        categories = [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}]
        coco_json(tmp_path / "annotations" / f"instances_{split}.json", [image],
                  [{"image_id": 1, "category_id": 90, "bbox": [4, 4, 20, 10]}], categories)  # fmt: skip
    text = find_bundled("coco.yaml").read_text().replace("path: coco2017", f"path: {tmp_path}")
    (tmp_path / "coco.yaml").write_text(text)
    data = check_det_dataset(str(tmp_path / "coco.yaml"))
    assert data["names"] == {0: "person", 1: "toothbrush"} and data["val"] == str(tmp_path / "val2017")
    assert build(data, "val").labels[0]["cls"].tolist() == [[1.0]]


@pytest.mark.parametrize(("split", "mode"), [("train", "train"), ("val", "val"), ("test", "val")])
def test_splits_sharing_an_image_folder_read_their_own_images(tmp_path, log_lines, split, mode):
    """Training builds 'train'; validation builds the split it is told (``split=``, 'val' by default)."""
    data = check_det_dataset(str(write_one_folder_dataset(tmp_path)))
    cfg = get_cfg(overrides={"imgsz": 64, "split": split})
    dataset = build_yolo_dataset(cfg, data[split], 4, data, mode=mode, stride=32)
    listed = json.loads((tmp_path / "annotations" / f"instances_{split}.json").read_text())
    assert dataset.split == split and dataset.json_file.name == f"instances_{split}.json"
    assert sorted(Path(f).name for f in dataset.im_files) == sorted(i["file_name"] for i in listed["images"])
    boxes = len(listed["annotations"])
    assert any(f"'{split}' split, instances_{split}.json: {ONE_FOLDER[split]} images, {boxes} boxes" in line
               for line in log_lines)  # fmt: skip


def test_a_split_that_is_none_of_those_sharing_the_folder_is_an_error(tmp_path):
    data = check_det_dataset(str(write_one_folder_dataset(tmp_path)))
    cfg = get_cfg(overrides={"imgsz": 64, "split": "minival"})
    with pytest.raises(ValueError, match=r"data.yaml: splits train, val, test share the image folder .*'minival'"):
        build_yolo_dataset(cfg, data["val"], 4, data, mode="val", stride=32)


def test_caches_go_to_the_cache_folder_whole(tmp_path, monkeypatch):
    """Scan and JSON caches land in CSPDET_CACHE_DIR, never in the dataset; a second build reads them unchanged."""
    monkeypatch.setenv("CSPDET_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    before = tree(write_coco_dataset(root).parent)
    data = check_det_dataset(str(root / "data.yaml"))
    assert len(build(data)) == 8 and len(build(data, "val")) == 4
    assert tree(root) == before
    cached = tree(tmp_path / "cache")
    names = sorted(p.name.split("-")[0] + "".join(p.suffixes) for p in cached)  # no temporary file left behind
    assert names == [f"instances_{s}{x}" for s in ("train", "val") for x in (".cache", ".cspdet.npz")]
    assert len(build(check_det_dataset(str(root / "data.yaml")))) == 8
    assert tree(tmp_path / "cache") == cached


def test_default_cache_folder_is_in_ultralytics_config_dir(monkeypatch):
    from ultralytics.utils import USER_CONFIG_DIR

    from cspdet.data.cache import cache_dir

    monkeypatch.delenv("CSPDET_CACHE_DIR", raising=False)
    assert cache_dir() == USER_CONFIG_DIR / "cspdet_cache"


def test_a_cache_folder_that_cannot_be_written_costs_only_the_cache(tmp_path, monkeypatch, log_lines):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CSPDET_CACHE_DIR", str(tmp_path / "file" / "cache"))
    data = check_det_dataset(str(write_coco_dataset(tmp_path / "data")))
    assert len(build(data)) == 8
    assert any("COCO cache not saved" in line for line in log_lines)
    assert any("scan cache not saved" in line for line in log_lines)


BCCD = REPO.parent / "shared" / "data" / "bccd"  # the real dataset, read-only (its SOURCE.md)


@pytest.mark.skipif(not (BCCD / "annotations").is_dir(), reason=f"BCCD not found at {BCCD}")
def test_bccd_splits_from_its_one_folder(tmp_path, log_lines):
    """datasets/bccd.yaml on the real BCCD: each split reads its JSON's images, scoring maps every val image, and
    the read-only folder is left as it was."""
    from cspdet.data import find_bundled
    from cspdet.eval.results import CocoResults

    before = tree(BCCD)
    text = find_bundled("bccd.yaml").read_text().replace("path: bccd", f"path: {BCCD}")
    (tmp_path / "bccd.yaml").write_text(text)
    data = check_det_dataset(str(tmp_path / "bccd.yaml"))
    assert data["names"] == {0: "RBC", 1: "WBC", 2: "Platelets"}
    train = build_yolo_dataset(get_cfg(overrides={"imgsz": 320}), data["train"], 8, data, mode="train", stride=32)
    val = build_yolo_dataset(get_cfg(overrides={"imgsz": 320}), data["val"], 8, data, mode="val", stride=32)
    assert (len(train), sum(len(lb["cls"]) for lb in train.labels)) == (291, 3847)
    assert (len(val), sum(len(lb["cls"]) for lb in val.labels)) == (73, 1039)
    assert not set(train.im_files) & set(val.im_files)
    assert any("'val' split, instances_val.json: 73 images, 1039 boxes" in line for line in log_lines)
    assert len(CocoResults(data["annotations"]["val"], data["val"], val.im_files).image_ids) == 73
    assert tree(BCCD) == before
