"""COCO-format data YAMLs (an ``annotations:`` key) and YAML albumentations pipelines for the stock trainer/validator.

- ``check_det_dataset`` accepts ``annotations: {split: JSON}`` (``names`` then optional: they come from the JSON
  categories), resolves the JSON paths to absolute ones, and finds cspdet's bundled data YAMLs by bare name.
- ``build_yolo_dataset`` builds cspdet's COCODataset (``cspdet.data.dataset``), which is YOLODataset unless the split
  has a COCO JSON.
- The trainer turns ``augmentations=<pipeline.yaml>`` into albumentations transforms before anything else runs.

Releases differ in how check_det_dataset reads the YAML (``YAML.load`` from 8.3.x on, ``yaml_load`` in 8.3.0); the
probe also checks the helpers that COCODataset's image scan uses (``cspdet.data.scan``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ultralytics.data import utils

from cspdet.integration import compat
from cspdet.patching import replaced

NAMES_FROM_JSON = "<names from the annotations JSON>"


def _fill_names(data):
    if isinstance(data, dict) and data.get("annotations") and data.get("names") is None and "nc" not in data:
        data["names"] = [NAMES_FROM_JSON]
    return data


@contextlib.contextmanager
def _names_optional():
    """Let a data YAML with ``annotations:`` leave out ``names`` (filled in from the JSON after the checks)."""
    if hasattr(utils, "YAML"):

        class DataYAML(utils.YAML):
            _instance = None

            @classmethod
            def load(cls, *args, **kwargs):
                return _fill_names(super().load(*args, **kwargs))

        name, replacement = "YAML", DataYAML
    else:  # 8.3.0
        name, original = "yaml_load", utils.yaml_load
        replacement = lambda *args, **kwargs: _fill_names(original(*args, **kwargs))  # noqa: E731
    with replaced(utils, **{name: replacement}):
        yield


def resolve_annotations(data: dict) -> dict:
    """Make ``data['annotations']`` ``{split: absolute JSON path}`` and take ``names`` from the JSON categories."""
    from cspdet.data.coco import load_coco

    where = data.get("yaml_file") or "data YAML"
    annotations = data["annotations"]
    if not isinstance(annotations, dict) or not annotations:
        raise TypeError(
            f"{where}: 'annotations' must map splits to COCO JSON files, e.g. "
            f"'annotations: {{train: annotations/instances_train2017.json}}', got {annotations!r}"
        )
    resolved = {}
    for split, file in annotations.items():
        if not isinstance(data.get(split), str):
            raise ValueError(f"{where}: 'annotations: {split}:' needs a '{split}:' image folder in the data YAML")
        json_file = (Path(data["path"]) / str(file)).resolve()
        if not json_file.is_file():
            raise FileNotFoundError(f"{where}: 'annotations: {split}:' file {json_file} not found")
        resolved[split] = str(json_file)
    data["annotations"] = resolved
    source = resolved.get("val") or next(iter(resolved.values()))
    names = load_coco(source).names.tolist()
    if list(data["names"].values()) == [NAMES_FROM_JSON]:
        data["names"], data["nc"] = dict(enumerate(names)), len(names)
    elif list(data["names"].values()) != names:
        raise ValueError(
            f"{where}: 'names' {list(data['names'].values())} differ from the categories of {source} {names}; "
            "leave 'names' out to take them from the JSON"
        )
    return data


def check_det_dataset(original, dataset, *args, **kwargs) -> dict:
    """Ultralytics' check_det_dataset, plus bundled data YAMLs by bare name and COCO JSON ``annotations:``."""
    from ultralytics.utils.checks import check_file

    from cspdet.data import find_bundled

    name = str(dataset)
    if (
        "://" not in name
        and Path(name).suffix in {".yaml", ".yml"}
        and not check_file(name, download=False, hard=False)
    ):
        dataset = find_bundled(name) or dataset
    with _names_optional():
        data = original(dataset, *args, **kwargs)
    if data.get("annotations") is not None:
        compat.require("evaluation", use=f"{data.get('yaml_file') or dataset}: 'annotations:'")
        resolve_annotations(data)
    return data


@contextlib.contextmanager
def set_up_trainer(trainer, cfg, overrides):
    """Around BaseTrainer.__init__ (``plugin.TRAINER_SET_UP``): ``augmentations`` given as a pipeline YAML becomes
    albumentations transforms."""
    from cspdet.data.augment import load_pipeline

    pipeline = (overrides or {}).get("augmentations")
    if isinstance(pipeline, (str, Path)):
        overrides = {**overrides, "augmentations": load_pipeline(pipeline)}
    yield cfg, overrides


def probe():
    """Check what the COCO dataset and the data YAML checks use."""
    import inspect

    from ultralytics.data import build
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.engine.trainer import BaseTrainer

    needed = {
        "ultralytics.data.utils": (utils, "check_det_dataset verify_image exif_size get_hash load_dataset_cache_file"),
        "ultralytics.data.build": (build, "YOLODataset build_yolo_dataset"),
        "YOLODataset": (YOLODataset, "get_img_files get_labels"),
    }  # fmt: skip
    for owner_name, (owner, names) in needed.items():
        missing = [n for n in names.split() if not hasattr(owner, n)]
        if missing:
            raise AttributeError(f"{owner_name} has no {', '.join(missing)}")
    if not (hasattr(utils, "YAML") or hasattr(utils, "yaml_load")):
        raise AttributeError("ultralytics.data.utils reads YAML with neither YAML nor yaml_load")
    if list(inspect.signature(utils.check_det_dataset).parameters)[:1] != ["dataset"]:
        raise TypeError("check_det_dataset no longer takes the dataset first")
    if list(inspect.signature(BaseTrainer.__init__).parameters) != ["self", "cfg", "overrides", "_callbacks"]:
        raise TypeError("BaseTrainer.__init__ no longer takes (cfg, overrides, _callbacks)")


def install():
    """Patch ultralytics' dataset check and dataset builder (the trainer's set-up: ``set_up_trainer``)."""
    from ultralytics.data import build

    from cspdet.data.dataset import COCODataset
    from cspdet.patching import patch, wrap_everywhere

    wrap_everywhere(utils, "check_det_dataset", check_det_dataset)
    patch(build, "YOLODataset", COCODataset)
