"""The image scan of a COCO split: every listed image checked once with ultralytics' image check, then cached.

The scan uses only what every supported ultralytics release has (``verify_image``, ``exif_size``, the dataset cache
file loader). Its cache goes to cspdet's cache folder (``cspdet.data.cache``), written whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
from itertools import repeat
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
from ultralytics.data import utils
from ultralytics.utils import LOGGER, NUM_THREADS, TQDM

from cspdet.files import atomic_write

SCAN_VERSION = "cspdet-coco-1"  # cspdet's own scan cache: its labels hold (file, shape, JSON index)


def _check_image(args: tuple) -> tuple:
    """Check one image with ultralytics' ``verify_image``: (index, file, (h, w) or None, missing, corrupt, message)."""
    i, im_file, prefix = args
    if not os.path.isfile(im_file):
        return i, im_file, None, 1, 0, f"{prefix}{im_file}: image missing, skipped"
    _, found, _, msg = utils.verify_image(((im_file, None), prefix))
    if not found:
        reason = msg.split("ignoring corrupt image/label: ", 1)[-1]
        return i, im_file, None, 0, 1, f"{prefix}{im_file}: corrupt image, skipped: {reason}"
    from PIL import Image

    with Image.open(im_file) as im:
        w, h = utils.exif_size(im)
    return i, im_file, (h, w), 0, 0, msg


def scan_images(files: list[str], prefix: str, cache_path: Path, cache_hash: str) -> tuple[dict, bool]:
    """Check ``files`` in threads, or load the result from ``cache_path`` when its hash matches.

    Returns:
        (dict): ``labels`` ({'im_file', 'shape', 'index'} of each usable image), ``results`` (found, missing, 0,
            corrupt, total) and ``msgs``.
        (bool): Whether the result came from the cache.
    """
    with contextlib.suppress(Exception):  # missing, stale or unreadable cache: scan again
        cache = utils.load_dataset_cache_file(cache_path)
        if cache["version"] == SCAN_VERSION and cache["hash"] == cache_hash:
            return cache, True
    labels, msgs, found, missing, corrupt = [], [], 0, 0, 0
    with ThreadPool(NUM_THREADS) as pool:
        results = pool.imap(_check_image, zip(range(len(files)), files, repeat(prefix)))
        bar = TQDM(results, desc=f"{prefix}Scanning {len(files)} images...", total=len(files))
        for i, im_file, shape, m, c, msg in bar:
            found, missing, corrupt = found + bool(shape), missing + m, corrupt + c
            if shape:
                labels.append({"im_file": im_file, "shape": shape, "index": i})
            if msg:
                msgs.append(msg)
            bar.desc = f"{prefix}Scanning {len(files)} images... {found} found, {missing} missing, {corrupt} corrupt"
        bar.close()
    cache = {"labels": labels, "results": (found, missing, 0, corrupt, len(files)), "msgs": msgs, "hash": cache_hash}
    cache["version"] = SCAN_VERSION
    try:
        with atomic_write(cache_path, "wb") as f:
            np.save(f, cache)
        LOGGER.info(f"{prefix}New cache created: {cache_path}")
    except OSError as e:  # a cache folder that cannot be written only costs the cache
        LOGGER.warning(f"{prefix}{cache_path}: scan cache not saved ({e})")
    return cache, False
