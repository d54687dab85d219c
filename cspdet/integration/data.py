"""COCO-format data YAMLs (an ``annotations:`` key) and YAML albumentations pipelines for the stock trainer/validator.

- ``check_det_dataset`` accepts ``annotations: {split: JSON}`` (``names`` then optional: they come from the JSON
  categories), resolves the JSON paths to absolute ones, and finds cspdet's bundled data YAMLs by bare name.
- ``build_yolo_dataset`` builds cspdet's COCODataset, which is YOLODataset unless the split has a COCO JSON.
- The trainer turns ``augmentations=<pipeline.yaml>`` into albumentations transforms before anything else runs.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ultralytics.utils import YAML

NAMES_FROM_JSON = "<names from the annotations JSON>"


class _DataYAML(YAML):
    """YAML loader that lets a data YAML with ``annotations:`` leave out ``names``, filled in after the checks."""

    _instance = None

    @classmethod
    def load(cls, file="data.yaml", append_filename=False):
        data = super().load(file, append_filename)
        if isinstance(data, dict) and data.get("annotations") and data.get("names") is None and "nc" not in data:
            data["names"] = [NAMES_FROM_JSON]
        return data


@contextlib.contextmanager
def _names_optional():
    from ultralytics.data import utils

    previous, utils.YAML = utils.YAML, _DataYAML
    try:
        yield
    finally:
        utils.YAML = previous


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
        resolve_annotations(data)
    return data


def init_trainer(original, trainer, cfg=None, overrides=None, _callbacks=None):
    """BaseTrainer.__init__ with ``augmentations`` given as a pipeline YAML built into albumentations transforms."""
    from ultralytics.cfg import DEFAULT_CFG

    from cspdet.data.augment import load_pipeline

    pipeline = (overrides or {}).get("augmentations")
    if isinstance(pipeline, (str, Path)):
        overrides = {**overrides, "augmentations": load_pipeline(pipeline)}
    original(trainer, DEFAULT_CFG if cfg is None else cfg, overrides, _callbacks)


def install():
    """Patch ultralytics' dataset check, dataset builder and trainer set-up (idempotent)."""
    from ultralytics.data import build, utils
    from ultralytics.engine.trainer import BaseTrainer

    from cspdet.data.dataset import COCODataset
    from cspdet.integration.plugin import wrap

    if getattr(utils.check_det_dataset, "cspdet", False):
        return
    original = utils.check_det_dataset
    wrap(utils, "check_det_dataset", check_det_dataset)
    for module in [m for n, m in sys.modules.items() if n.startswith("ultralytics.")]:  # modules that imported it
        if getattr(module, "check_det_dataset", None) is original:
            module.check_det_dataset = utils.check_det_dataset
    build.YOLODataset = COCODataset
    wrap(BaseTrainer, "__init__", init_trainer)
