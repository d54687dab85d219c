"""The ablation driver: variant YAMLs, real `yolo train` runs, resume, summary and plot."""

import json

import pytest
import torch
from ultralytics import YOLO

from cspdet import ablation
from cspdet.nn.wrc import WeightedShortcut
from cspdet.plotting import plot_ablation_curves


def test_variant_yaml_replaces_wrc_and_keeps_the_scale(tmp_path):
    path = ablation.Variant("rezero", "csp_wrc-s.yaml", "rezero").model_yaml(tmp_path)
    assert path == str(tmp_path / "csp_wrc_rezero-s.yaml")
    model = YOLO(path).model
    shortcuts = [m for m in model.modules() if isinstance(m, WeightedShortcut)]
    assert shortcuts and all(torch.all(m.coefficients()[0] == 0) for m in shortcuts)  # ReZero: alpha starts at 0
    assert model.model[1].conv.out_channels == 64  # scale s: width 0.5 of 128


def test_variant_without_wrc_is_passed_through(tmp_path):
    assert ablation.Variant("yolo11n", "yolo11n.yaml").model_yaml(tmp_path) == "yolo11n.yaml"
    assert not list(tmp_path.iterdir())


def test_wrc_on_a_model_that_cannot_take_it_is_refused(tmp_path):
    with pytest.raises(ValueError, match="variant 'x': yolo11n.yaml is not a cspdet model YAML"):
        ablation.Variant("x", "yolo11n.yaml", "scalar").model_yaml(tmp_path)


def test_runs_resume_and_summarise(tmp_path, tiny_dataset):
    variants = [ablation.Variant("plain", "csp_plain-n.yaml"), ablation.Variant("channel", "csp_wrc-n.yaml", "channel")]
    budget = {"epochs": 2, "imgsz": 64, "batch": 4, "workers": 0}
    records = ablation.run(variants, [0], str(tiny_dataset), budget, tmp_path)
    assert [(r["variant"], r["seed"]) for r in records] == [("plain", 0), ("channel", 0)]
    for r in records:
        assert len(r["curves"]["mAP50-95"]) == 2 and r["curves"]["mAP50-95"][-1] == r["mAP50-95"]
        assert 0 < r["train_s"] < r["wall_s"]
    assert (tmp_path / "runs" / "channel-s0" / "wrc_weights.csv").is_file()
    assert not (tmp_path / "runs" / "plain-s0" / "wrc_weights.csv").exists()

    with pytest.raises(ValueError, match=r"runs\.jsonl: run plain-s0 was trained with .*'epochs': 2.*another output"):
        ablation.run(variants, [0], str(tiny_dataset), {**budget, "epochs": 3}, tmp_path)
    log_times = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.log")}
    assert ablation.run(variants, [0], str(tiny_dataset), budget, tmp_path) == records  # all done: nothing reruns
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.log")} == log_times

    plain, channel = records
    more = [{**plain, "seed": 1, "mAP50": 0.2}, {**channel, "seed": 1, "mAP50": 0.5}, {**channel, "seed": 2}]
    rows = {row["variant"]: row for row in ablation.summarise(records + more)}
    assert rows["plain"]["runs"] == rows["plain"]["pairs"] == 2 and rows["plain"]["mAP50 delta"] == 0
    assert rows["channel"]["runs"] == 3 and rows["channel"]["pairs"] == 2  # seed 2 has no plain run to pair with
    assert rows["channel"]["mAP50"] == pytest.approx((2 * channel["mAP50"] + 0.5) / 3)
    diffs = [channel["mAP50"] - plain["mAP50"], 0.5 - 0.2]
    assert rows["channel"]["mAP50 delta"] == pytest.approx(sum(diffs) / 2)
    assert rows["channel"]["mAP50 gains"] == sum(d > 0 for d in diffs)
    png = plot_ablation_curves(records, tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_failing_run_stops_with_its_log(tmp_path):
    variant = ablation.Variant("plain", "csp_plain-n.yaml")
    with pytest.raises(RuntimeError, match=r"run plain-s0 failed .*plain-s0\.log") as info:
        ablation.run([variant], [0], str(tmp_path / "missing.yaml"), {"epochs": 1}, tmp_path)
    assert "missing.yaml" in str(info.value)
    assert not (tmp_path / ablation.RECORDS).exists()
    assert json.dumps(ablation.load_records(tmp_path)) == "[]"


@pytest.mark.parametrize("wrc", ["scalar", "channel", "rezero", "fast"])
def test_variants_start_from_the_twins_convolutions(tmp_path, wrc):
    """What makes the paired comparison fair: same seed, same weights as csp_plain, plus alpha/beta only."""
    torch.manual_seed(0)
    plain = YOLO("csp_plain-n.yaml").model.state_dict()
    torch.manual_seed(0)
    variant = YOLO(ablation.Variant(wrc, "csp_wrc-n.yaml", wrc).model_yaml(tmp_path)).model.state_dict()
    assert {k.rsplit(".", 1)[-1] for k in variant.keys() - plain.keys()} == {"alpha", "beta"}
    assert all(torch.equal(plain[k], variant[k]) for k in plain)
