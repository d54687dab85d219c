"""Mutation fuzzing of COCO instances JSON through cspdet's training parser, its scorer and the ultralytics trainer
(``python -m tools.fuzz``; docs/robustness.md).

``mutations`` makes the mutants, ``oracle`` says how each one ended, ``report`` counts the outcomes; ``run_fuzz``
runs a seed's mutants through the oracle.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from pathlib import Path

from ultralytics.utils import LOGGER, TQDM

from cspdet.data.coco import load_coco
from cspdet.eval.coco import load_annotations
from tools.fuzz.mutations import mutants
from tools.fuzz.oracle import Outcome, check_parse_and_score, check_training, training_input
from tools.fuzz.report import FuzzReport


def run_fuzz(
    seed_json: str | Path,
    image_dir: str | Path,
    count: int = 2000,
    seed: int = 0,
    train: bool = False,
    folder: str | Path = "fuzz",
) -> FuzzReport:
    """Check ``count`` mutants of ``seed_json`` (whose images are in ``image_dir``); see ``tools.fuzz.oracle``.

    Args:
        seed_json (str | Path): A valid COCO instances JSON.
        image_dir (str | Path): Its images.
        count (int): How many mutants.
        seed (int): Seed of the mutations.
        train (bool): Also train one step on every mutant that passes, once per distinct training input.
        folder (str | Path): Working folder (emptied first).

    Returns:
        (FuzzReport): Every mutant's outcome.

    Raises:
        CocoFormatError: The seed file itself is invalid.
    """
    seed_json, image_dir, folder = Path(seed_json), Path(image_dir).resolve(), Path(folder).resolve()
    load_annotations(seed_json)  # the seed must be valid
    stream = mutants(json.loads(seed_json.read_bytes()), seed)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "parse").mkdir(parents=True)
    outcomes, trained = [], {}
    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        for mutant in TQDM(itertools.islice(stream, count), total=count, desc=f"Fuzzing {seed_json.name}"):
            outcome = check_parse_and_score(mutant, folder / "parse", image_dir)
            if train and outcome.verdict == "works":
                key = (training_input(load_coco(folder / "parse" / "instances.json")), tuple(mutant.renamed.items()))
                if key not in trained:
                    trained[key] = check_training(mutant, folder / "train", image_dir)
                outcome = Outcome(mutant, trained[key].verdict, trained[key].detail)
            outcomes.append(outcome)
    finally:
        LOGGER.setLevel(level)
    return FuzzReport(outcomes, len(trained) if train else None)
