"""Ultralytics' YOLODataset reading a split's labels from its COCO instances JSON instead of YOLO .txt files."""

from __future__ import annotations

import os
from pathlib import Path

from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import get_hash
from ultralytics.utils import LOCAL_RANK, LOGGER, TQDM

from cspdet.data.cache import cache_file
from cspdet.data.coco import load_coco
from cspdet.data.scan import scan_images

SHOWN_MESSAGES = 10  # missing/corrupt image warnings printed one by one, the rest are counted


def split_annotations(data: dict, img_path, split: str) -> tuple[str, Path] | None:
    """Return the split and the COCO JSON that ``data['annotations']`` gives for the images in ``img_path``.

    Splits may share one image folder (their JSONs select the images): then ``split``, the one being built, decides.
    Otherwise the split is the one whose folder is ``img_path``, whatever ``split`` says (a dataset built by hand).
    """
    annotations = data.get("annotations") or {}
    if not isinstance(img_path, (str, Path)):
        return None
    sharing = [s for s in annotations if isinstance(data.get(s), str) and Path(data[s]) == Path(img_path)]
    if split in sharing or len(sharing) == 1:
        chosen = split if split in sharing else sharing[0]
        return chosen, Path(annotations[chosen])
    if sharing:
        raise ValueError(
            f"{data.get('yaml_file') or 'data YAML'}: splits {', '.join(sharing)} share the image folder {img_path}, "
            f"and the split being built, '{split}', is none of them"
        )
    return None


class COCODataset(YOLODataset):
    """YOLODataset whose labels come from the COCO JSON that the data YAML's ``annotations:`` gives for its split.

    The split is ``train`` for a training dataset and ``hyp.split`` (``val`` unless told) for a validation one, as
    ultralytics picks them; splits that share an image folder read exactly the images of their own JSON. The image
    list is the JSON's ``images`` (joined to the split's image folder); images are checked with ultralytics' image
    check (missing or corrupt ones are skipped and counted) and the result is cached in cspdet's cache folder
    (``cspdet.data.scan``, ``cspdet.data.cache``). A split without a JSON is read exactly as YOLODataset reads it.
    """

    def __init__(self, img_path, *args, data: dict, task: str = "detect", **kwargs):
        """Initialise like YOLODataset (same arguments)."""
        building = "train" if kwargs.get("augment") else getattr(kwargs.get("hyp"), "split", None) or "val"
        self.split, self.json_file = split_annotations(data, img_path, building) or (building, None)
        if self.json_file and task != "detect":
            raise ValueError(f"{self.json_file}: COCO JSON annotations give boxes, which task={task} cannot train on")
        super().__init__(img_path, *args, data=data, task=task, **kwargs)

    def get_img_files(self, img_path) -> list[str]:
        """The JSON's images under the split's image folder (the first ``fraction`` of them)."""
        if not self.json_file:
            return super().get_img_files(img_path)
        self.index = load_coco(self.json_file)
        names = list(self.data["names"].values())
        if names != self.index.names.tolist():
            raise ValueError(
                f"{self.json_file}: categories {self.index.names.tolist()} differ from the data YAML's names {names}; "
                "every split's JSON must have the same categories"
            )
        files = [os.path.join(img_path, f) for f in self.index.files.tolist()]
        count = self.fraction if isinstance(self.fraction, int) else max(1, round(len(files) * self.fraction))
        return files[:count]

    def get_labels(self) -> list[dict]:
        """Labels of the images found, from the COCO index; logs one line with every count."""
        if not self.json_file:
            return super().get_labels()
        cache_path = cache_file(self.json_file, ".cache")
        cache_hash = get_hash([*self.im_files, self.index.key])  # the JSON's content, the images' paths and stats
        cache, exists = scan_images(self.im_files, self.prefix, cache_path, cache_hash)
        found, missing, _, corrupt, total = cache["results"]
        msgs = cache["msgs"]
        if LOCAL_RANK in {-1, 0}:
            if exists:
                summary = f"{found} images, {missing} missing, {corrupt} corrupt"
                TQDM(None, desc=f"{self.prefix}Scanning {cache_path}... {summary}", total=total, initial=total)
            for msg in msgs[:SHOWN_MESSAGES]:
                LOGGER.warning(msg)
            if len(msgs) > SHOWN_MESSAGES:
                LOGGER.warning(f"{self.prefix}... and {len(msgs) - SHOWN_MESSAGES} more image warnings")
        labels, resized = [], 0
        for entry in cache["labels"]:
            cls, boxes = self.index.labels(entry["index"])
            resized += tuple(entry["shape"]) != tuple(self.index.sizes[entry["index"]])
            labels.append(
                {
                    "im_file": entry["im_file"],
                    "shape": entry["shape"],
                    "cls": cls,
                    "bboxes": boxes,
                    "segments": [],
                    "keypoints": None,
                    "normalized": True,
                    "bbox_format": "xywh",
                }
            )
        LOGGER.info(
            f"{self.prefix}'{self.split}' split, {self.json_file.name}: {self.index.summary()}, {missing} missing "
            f"images, {corrupt} corrupt images"
        )
        if resized:
            LOGGER.warning(
                f"{self.prefix}{resized} images differ in size from their JSON 'width' and 'height' (e.g. EXIF "
                "rotation); their boxes are scaled to the image as loaded"
            )
        if not labels:
            raise RuntimeError(f"{self.prefix}No valid images for {self.json_file} in {self.img_path}: {msgs[:3]}")
        self.im_files = [lb["im_file"] for lb in labels]
        return labels
