"""Boxes drawn by the BoxPainter look as `Results.plot` draws them: the same pixels but for anti-aliased fringes."""

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from ultralytics import YOLO
from ultralytics.engine.results import Results

from cspdet.video import open_source
from cspdet.video.draw import BoxPainter, LabelCache


@pytest.mark.parametrize("tracked", [False, True])
def test_boxes_and_labels_are_drawn_as_results_plot_draws_them(model, clip, imgsz, tracked):
    source = open_source(clip)
    images = [frame.image for frame in itertools.islice(source.read(), 12)]
    source.close()
    results = YOLO(model).predict([image.copy() for image in images], imgsz=imgsz, verbose=False)
    painter, agree, strays, drawn = BoxPainter(results[0].names, images[0].shape), [], [], 0
    for image, result in zip(images, results):
        data = result.boxes.data[:3]  # a few boxes: where many overlap, fringes of one fall on the edges of another
        if tracked:
            ids = torch.arange(7, 7 + len(data), dtype=data.dtype)[:, None]
            data = torch.cat([data[:, :4], ids, data[:, 4:]], 1)
        result = Results(image.copy(), path="", names=result.names, boxes=data)
        theirs, boxes = result.plot().astype(int), data.numpy()
        ours = painter(image.copy(), boxes[:, :4], boxes[:, -1], boxes[:, -2], boxes[:, 4] if tracked else None)
        changed = np.abs(theirs - image).max(2) > 80  # boxes and labels, not the faint fringes around them
        agree.append((np.abs(ours.astype(int) - theirs).max(2)[changed] <= 24).mean() if changed.any() else 1.0)
        strays.append(((np.abs(ours.astype(int) - image).max(2) > 80) & (np.abs(theirs - image).max(2) <= 24)).sum())
        drawn += len(boxes)
    assert drawn >= 12 and min(agree) > 0.85 and np.mean(agree) > 0.95, agree
    assert sum(strays) <= 4 * drawn  # nothing drawn where Results.plot draws nothing, but the corners it rounds


def test_labels_at_the_frame_edges_move_as_results_plot_moves_them():
    names = {0: "bottle", 1: "a long class name"}
    boxes = torch.tensor([  # at the top left (label inside), right edge (label moved left), near the top, wider label
        [0.0, 0.0, 40.0, 30.0, 0.5, 0.0], [130.0, 60.0, 160.0, 120.0, 0.25, 1.0], [60.0, 8.0, 100.0, 50.0, 0.75, 1.0]
    ])  # fmt: skip
    theirs = Results(np.zeros((120, 160, 3), np.uint8), path="", names=names, boxes=boxes).plot().astype(int)
    data = boxes.numpy()
    ours = BoxPainter(names, (120, 160, 3))(np.zeros((120, 160, 3), np.uint8), data[:, :4], data[:, 5], data[:, 4])
    changed = theirs.max(2) > 80
    assert changed.sum() > 2000 and (np.abs(ours - theirs).max(2)[changed] <= 24).mean() > 0.95


def test_painters_of_two_threads_render_each_label_once():
    cache = LabelCache()
    painters = [BoxPainter({0: "bottle"}, (120, 160, 3), cache=cache) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:  # as the inference workers: one painter per thread, the labels in common
        first, second = pool.map(lambda p: p.label("bottle 0.50", (255, 0, 0), False), painters)
    assert first is second and len(cache.items) == 1 and first.shape[1] > 40


def test_label_cache_drops_the_least_recently_used_beyond_its_budget():
    patch = np.zeros((20, 50, 3), np.uint8)
    cache = LabelCache(budget=2 * patch.nbytes)
    cache.put("a", patch)
    cache.put("b", patch)
    assert cache.get("a") is patch  # now the most recent
    cache.put("c", patch)
    assert cache.get("b") is None and cache.get("a") is patch and cache.get("c") is patch
    assert cache.bytes == 2 * patch.nbytes
