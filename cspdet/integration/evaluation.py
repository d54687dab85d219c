"""Official COCO metrics in ``yolo val`` and in the validation of best.pt after training, for COCO-format data.

For a data YAML with ``annotations: {split: JSON}``, validation also records each image's detections with the
JSON's image and category ids and scores them against the JSON with cspdet.eval (crowd regions ignored, 100
detections per image); the 12 numbers are kept as ``validator.metrics.coco``. Standalone validation prints them and
the per-class AP after ultralytics' table and writes predictions.json and coco_metrics.json into the run directory;
per-epoch validation during training prints one line (``cspdet.integration.loggers`` puts the numbers into
results.csv and the loggers). Ultralytics' own metrics and the fitness that picks best.pt are unchanged.

Releases differ in what ``update_metrics`` receives per image: a dict of tensors from 8.3.154 on, an (N, 6) tensor
(x1, y1, x2, y2, conf, cls) before; ``gather_stats`` (DDP validation) exists from 8.3.218 on.
"""

from __future__ import annotations

import torch.distributed as dist
from ultralytics.utils import LOGGER, RANK, colorstr, ops

from cspdet.eval.coco import metrics_table
from cspdet.eval.results import CocoResults


def coco_results(validator, model) -> CocoResults | None:
    """Return the collector for this validation, or None when COCO metrics do not apply."""
    split = validator.args.split or "val"
    annotations = (validator.data or {}).get("annotations") or {}
    if validator.args.task != "detect" or split not in annotations:
        return None
    if validator.args.single_cls:
        LOGGER.warning("COCO metrics skipped: single_cls=True merges the categories they are computed per")
        return None
    results = CocoResults(annotations[split], validator.data[split], validator.dataloader.dataset.im_files)
    if len(model.names) != len(results.category_ids):
        LOGGER.warning(
            f"COCO metrics skipped: the model has {len(model.names)} classes, {annotations[split]} has "
            f"{len(results.category_ids)} categories"
        )
        return None
    return results


def init_metrics(original, validator, model):
    """Set up the COCO collector; ultralytics' own save_json would write predictions.json with other ids."""
    validator.coco_results = coco_results(validator, model)
    validator.metrics.coco = None  # this validation's numbers, once scored
    if validator.coco_results:
        validator.args.save_json = False
    original(validator, model)


def detections(pred) -> tuple:
    """One image's (boxes xyxy, conf, cls) from the validator's predictions, a dict or an (N, 6) tensor."""
    if isinstance(pred, dict):
        return pred["bboxes"], pred["conf"], pred["cls"]
    return pred[:, :4], pred[:, 4], pred[:, 5]


def update_metrics(original, validator, preds, batch):
    """Record each image's detections, scaled to the original image as ultralytics does for save_json."""
    original(validator, preds, batch)
    if getattr(validator, "coco_results", None):
        for si, pred in enumerate(preds):
            boxes, conf, cls = detections(pred)
            boxes = ops.scale_boxes(
                batch["img"].shape[2:], boxes.clone(), batch["ori_shape"][si], ratio_pad=batch["ratio_pad"][si]
            )
            validator.coco_results.add(batch["im_file"][si], boxes.cpu().numpy(), conf.cpu().numpy(), cls.cpu().numpy())


def gather_stats(original, validator):
    """Under DDP every rank validates a shard of the images: pool the detections on rank 0."""
    original(validator)
    results = getattr(validator, "coco_results", None)
    if results and RANK != -1:
        gathered = [None] * dist.get_world_size() if RANK == 0 else None
        dist.gather_object(results.detections, gathered, dst=0)
        results.detections = [d for detections in gathered for d in detections] if RANK == 0 else []


def print_results(original, validator):
    """After ultralytics' table: score, print and save the COCO metrics (also kept as ``metrics.coco``); in training,
    score and print one line."""
    original(validator)
    results = getattr(validator, "coco_results", None)
    if results and validator.training:
        validator.metrics.coco = metrics = results.score()
        LOGGER.info(f"{colorstr('COCO metrics')}: AP {metrics['AP']:.3f}, AP50 {metrics['AP50']:.3f}")
    elif results:
        metrics = results.score(validator.save_dir)
        LOGGER.info(f"\n{colorstr('COCO metrics')} of {len(results.image_ids)} images against {results.annotations}")
        LOGGER.info(metrics_table(metrics))
        LOGGER.info(f"Saved predictions.json and coco_metrics.json to {colorstr('bold', validator.save_dir)}")
        validator.metrics.coco = metrics


def probe():
    """Check the DetectionValidator methods wrapped here."""
    import inspect

    from ultralytics.models.yolo.detect import DetectionValidator

    expected = {"init_metrics": ["model"], "update_metrics": ["preds", "batch"], "print_results": []}
    for method, parameters in expected.items():
        found = list(inspect.signature(getattr(DetectionValidator, method)).parameters)[1:]
        if found != parameters:
            raise TypeError(f"DetectionValidator.{method} takes {found}, not {parameters}")


def install():
    """Wrap DetectionValidator's methods above; gather_stats where the release has it (DDP validation)."""
    from ultralytics.models.yolo.detect import DetectionValidator

    from cspdet.patching import wrap

    for method in (init_metrics, update_metrics, gather_stats, print_results):
        if hasattr(DetectionValidator, method.__name__):
            wrap(DetectionValidator, method.__name__, method)
