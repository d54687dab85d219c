"""The COCO JSON fuzzer: the CI sample of seeded mutants, the reach of its mutations, and one-step training."""

import itertools
import json
from collections import Counter

import pytest

from tools.fuzz import run_fuzz
from tools.fuzz.mutations import KINDS, Mutant, mutants, seed_dataset
from tools.fuzz.oracle import check_training
from tools.fuzz.report import fuzz_tables


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """A valid seed JSON (shapes images, polygons, one RLE crowd region, a background image)."""
    return seed_dataset(tmp_path_factory.mktemp("seed"))


def test_ci_sample(seed, tmp_path):
    """300 seeded mutants, parsed for training and for scoring and scored against pycocotools: none fails otherwise
    than with one error that names the file and the field; both outcomes occur, and every rule is broken."""
    report = run_fuzz(seed, seed.parent / "images", count=300, seed=0, folder=tmp_path / "fuzz")
    assert not report.findings(), fuzz_tables(report)
    counts = report.counts()
    assert all(sum(counts[kind].values()) >= 15 for kind in KINDS)
    for kind in ("remove-key", "wrong-type", "bad-number", "duplicate", "path-escape", "invalid-json", "combo"):
        assert counts[kind]["works"] and counts[kind]["rejected"], (kind, counts[kind])
    errors = " | ".join(error for error, _ in report.errors(top=1000))
    for rule in [
        "invalid JSON",
        "must be an object",
        "is empty",
        "must be a list",
        "'bbox' must be [x, y, width, height]",
        "'file_name' must be a relative path",
        "'area' must be a finite number >= 0",
        "'image_id' ... is not in 'images'",
        "'category_id' ... is not in 'categories'",
        "must be a 64-bit integer",
        "is a duplicate of",
        "has no '",
    ]:
        assert rule in errors, f"no mutant of the sample broke the rule '{rule}'"


def test_2000_distinct_mutants_of_every_kind_in_a_fixed_order(seed):
    doc = json.loads(seed.read_text())
    stream = list(itertools.islice(mutants(doc, seed=0), 2000))
    assert len({m.text for m in stream}) == 2000 and json.loads(seed.read_text()) == doc  # the seed is left as it is
    kinds = Counter(m.kind for m in stream)
    assert all(kinds[kind] >= 100 for kind in KINDS), kinds
    assert [m.text for m in itertools.islice(mutants(doc, seed=0), 100)] == [m.text for m in stream[:100]]
    assert [m.text for m in itertools.islice(mutants(doc, seed=1), 100)] != [m.text for m in stream[:100]]


def test_training_one_step(seed, tmp_path):
    """A file without 'area', with a non-ASCII file name in a subfolder and a box outside its image trains one step,
    and the final validation scores it as pycocotools does; a file whose images are all missing stops before."""
    doc = json.loads(seed.read_text())
    for a in doc["annotations"]:
        del a["area"]
    doc["annotations"][1]["bbox"] = [-30.0, -30.0, 10.0, 10.0]
    old = doc["images"][0]["file_name"]
    doc["images"][0]["file_name"] = f"日本/画像_{old}"
    mutant = Mutant(0, "manual", "no area", json.dumps(doc, ensure_ascii=False).encode(), {f"日本/画像_{old}": old})
    outcome = check_training(mutant, tmp_path / "works", seed.parent / "images")
    assert outcome.verdict == "works", outcome.detail
    metrics = json.loads((tmp_path / "works" / "run" / "coco_metrics.json").read_text())
    assert sum(c["instances"] for c in metrics["per_class"]) == sum(1 for a in doc["annotations"] if not a["iscrowd"])

    for image in doc["images"]:
        image["file_name"] = f"missing/{image['file_name']}"
    stopped = check_training(Mutant(1, "manual", "no images", json.dumps(doc).encode()), tmp_path / "stopped",
                             seed.parent / "images")  # fmt: skip
    assert stopped.verdict == "stopped" and "No valid images" in stopped.detail


def test_unusual_segmentations_train(seed, tmp_path):
    """Segmentation values that are empty, RLE, or of a wrong type are never read: the file trains one step and the
    final validation scores it as pycocotools does."""
    doc = json.loads(seed.read_text())
    values = [[], {}, [[]], "x", 5, None, {"counts": [3, 4], "size": [64, 64]}, [[1.5, 2.5, 3.5]]]
    for k, a in enumerate(doc["annotations"]):
        a["segmentation"] = values[k % len(values)]
    mutant = Mutant(0, "manual", "unusual segmentations", json.dumps(doc).encode())
    outcome = check_training(mutant, tmp_path / "train", seed.parent / "images")
    assert outcome.verdict == "works", outcome.detail
