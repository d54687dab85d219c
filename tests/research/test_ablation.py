"""The ablation driver: variant YAMLs, real `yolo train` runs, resume, paired statistics, report and plots."""

import json
import math

import pytest
import torch
from ultralytics import YOLO

from cspdet.nn.wrc import WeightedShortcut
from cspdet.research import ablation


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
    variants = [
        ablation.Variant("plain", "csp_plain-n.yaml"),
        ablation.Variant("channel", "csp_wrc-n.yaml", "channel", "plain"),
    ]
    budget = {"epochs": 2, "imgsz": 64, "batch": 4, "workers": 0}
    records = ablation.run(variants, [0], str(tiny_dataset), budget, tmp_path)
    assert [(r["variant"], r["seed"]) for r in records] == [("plain", 0), ("channel", 0)]
    for r in records:
        assert len(r["curves"]["mAP50-95"]) == 2 and r["curves"]["mAP50-95"][-1] == r["mAP50-95"]
        assert 0 < r["train_s"] < r["wall_s"] and r["cpu_s"] > 0
    assert (tmp_path / "runs" / "channel-s0" / "wrc_weights.csv").is_file()
    assert not (tmp_path / "runs" / "plain-s0" / "wrc_weights.csv").exists()

    with pytest.raises(ValueError, match=r"runs\.jsonl: run plain-s0 was trained with .*'epochs': 2.*another output"):
        ablation.run(variants, [0], str(tiny_dataset), {**budget, "epochs": 3}, tmp_path)
    log_times = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.log")}
    assert ablation.run(variants, [0], str(tiny_dataset), budget, tmp_path) == records  # all done: nothing reruns
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.log")} == log_times

    plain, channel = records
    more = [{**plain, "seed": 1}, {**channel, "seed": 1}, {**channel, "seed": 2}]
    more[0]["curves"] = {**plain["curves"], "mAP50-95": [0.1, 0.2]}
    more[1]["curves"] = {**channel["curves"], "mAP50-95": [0.1, 0.5]}
    rows = {row["variant"]: row for row in ablation.summarise(records + more, variants, checkpoints=(1,))}
    assert (
        rows["plain"]["runs"] == 2 and rows["plain"]["pairs"] == 0 and "delta" not in rows["plain"]["points"]["final"]
    )
    assert rows["channel"]["runs"] == 3 and rows["channel"]["pairs"] == 2  # seed 2 has no plain run to pair with
    final = rows["channel"]["points"]["final"]
    diffs = [channel["mAP50-95"] - plain["mAP50-95"], 0.5 - 0.2]
    assert final["delta"] == pytest.approx(sum(diffs) / 2) and final["gains"] == sum(d > 0 for d in diffs)
    assert rows["channel"]["points"]["epoch 1"]["epoch"] == 1
    assert rows["channel"]["cpu ratio"] == pytest.approx(channel["cpu_s"] / plain["cpu_s"])  # the same in both pairs


def test_paired_interval_is_the_paired_t_interval():
    mean, low, high = ablation.paired_interval([1, 2, 3, 4, 5])  # mean 3, sd 1.5811, t(0.975, 4 df) = 2.776
    assert (mean, low, high) == pytest.approx((3, 3 - 2.776 * 1.5811 / 5**0.5, 3 + 2.776 * 1.5811 / 5**0.5), abs=1e-3)
    assert all(math.isnan(x) for x in ablation.paired_interval([0.2])[1:])


def test_a_failing_run_stops_with_its_log(tmp_path):
    variant = ablation.Variant("plain", "csp_plain-n.yaml")
    with pytest.raises(RuntimeError, match=r"run plain-s0 failed .*plain-s0\.log") as info:
        ablation.run([variant], [0], str(tmp_path / "missing.yaml"), {"epochs": 1}, tmp_path)
    assert "missing.yaml" in str(info.value)
    assert not (tmp_path / ablation.RECORDS).exists()
    assert json.dumps(ablation.load_records(tmp_path)) == "[]"


@pytest.mark.parametrize("variant", [v for v in ablation.VARIANTS if v.baseline], ids=lambda v: v.name)
def test_variants_start_from_their_baselines_convolutions(tmp_path, variant):
    """What makes the paired comparison fair: same seed, the baseline's own weights, plus alpha/beta only."""
    baseline = next(v for v in ablation.VARIANTS if v.name == variant.baseline)
    torch.manual_seed(0)
    plain = YOLO(baseline.model_yaml(tmp_path)).model.state_dict()
    torch.manual_seed(0)
    variant = YOLO(variant.model_yaml(tmp_path)).model.state_dict()
    assert {k.rsplit(".", 1)[-1] for k in variant.keys() - plain.keys()} == {"alpha", "beta"}
    assert all(torch.equal(plain[k], variant[k]) for k in plain)


def test_variants_at_another_scale(tmp_path):
    scaled = {v.name: v.at_scale("s") for v in ablation.VARIANTS}
    assert scaled["yolo11n"].model == "yolo11s.yaml" and scaled["yolo11-rezero"].model == "yolo11_wrc-s.yaml"
    path = scaled["yolo11-rezero"].model_yaml(tmp_path)
    assert YOLO(path).model.model[1].conv.out_channels == YOLO("yolo11s.yaml").model.model[1].conv.out_channels
