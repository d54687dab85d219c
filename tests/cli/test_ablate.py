"""`cspdet ablate` as a user runs it: real trainings, the report with paired differences, and its plots."""

import json

from helpers import cspdet


def test_ablate_trains_reports_and_resumes(tmp_path, tiny_dataset):
    out, doc = tmp_path / "ablation", tmp_path / "docs" / "results.md"
    args = ["--variants", "csp-channel", "--seeds", "0", "1", "--epochs", "2", "--imgsz", "64", "--batch", "4"]
    args += ["--data", str(tiny_dataset), "--out", str(out), "--doc", str(doc)]
    cspdet("ablate", *args, timeout=900)
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["variant"], r["seed"]) for r in records) == [
        ("csp-channel", 0), ("csp-channel", 1), ("csp-plain", 0), ("csp-plain", 1)  # the baseline is added
    ]  # fmt: skip
    assert all(r["cpu_s"] > 0 and len(r["curves"]["mAP50-95"]) == 2 for r in records)
    text = doc.read_text()
    assert "### csp-plain and its weighted twins" in text and "`cspdet ablate --variants csp-channel" in text
    assert "| csp-channel | 2 |" in text  # two pairs, one row of paired differences
    for png in ("ablation_csp-plain.png", "ablation_csp-plain_delta.png", "wrc_weights_csp-channel.png"):
        assert (doc.parent / "img" / png).read_bytes()[:4] == b"\x89PNG" and f"img/{png}" in text
    again = cspdet("ablate", *args, "--report")  # nothing retrains
    assert "ablation runs" not in again.stderr and [json.loads(x) for x in (out / "runs.jsonl").open()] == records


def test_unknown_variant_and_empty_report(tmp_path):
    unknown = cspdet("ablate", "--variants", "yolo11-rezro", "--out", str(tmp_path), check=False)
    assert unknown.returncode == 1 and "unknown variant(s) yolo11-rezro; choose from yolo11n" in unknown.stderr
    empty = cspdet("ablate", "--report", "--out", str(tmp_path), check=False)
    assert empty.returncode == 1 and f"{tmp_path / 'runs.jsonl'}: no runs recorded" in empty.stderr
