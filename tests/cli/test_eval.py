"""`cspdet eval` as a user runs it: a subprocess on files."""

import json

from helpers import cspdet
from helpers.coco_cases import edge_case

from cspdet.eval import METRIC_KEYS, save_json
from cspdet.eval.reference import pycocotools_scores


def test_scores_files_and_writes_metrics(tmp_path):
    annotations, predictions = edge_case()
    a, p = save_json(annotations, tmp_path / "a.json"), save_json(predictions, tmp_path / "p.json")
    out = cspdet("eval", "--annotations", str(a), "--predictions", str(p), "--out", str(tmp_path / "m.json"))
    assert "".join(f"{k:>7}" for k in METRIC_KEYS) in out.stdout
    assert all(name in out.stdout for name in ("cat", "dog", "unseen", "rare"))
    metrics = json.loads((tmp_path / "m.json").read_text())
    reference, _ = pycocotools_scores(annotations, predictions)
    assert [round(metrics[k], 6) for k in METRIC_KEYS] == [round(float(x), 6) for x in reference]
    assert [c["id"] for c in metrics["per_class"]] == [7, 21, 55, 90]


def test_unknown_category_is_an_error(tmp_path):
    annotations, predictions = edge_case()
    predictions[6]["category_id"] = 8
    a, p = save_json(annotations, tmp_path / "a.json"), save_json(predictions, tmp_path / "p.json")
    args = ["--annotations", str(a), "--predictions", str(p), "--out", str(tmp_path / "m.json")]
    out = cspdet("eval", *args, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"cspdet eval: error: {p}: predictions[6] 'category_id' 8 is not in the categories of {a}"
    ]
    assert not (tmp_path / "m.json").exists()
