"""Plots of the learned shortcut weights and of the ablation curves."""

import pytest

from cspdet.plotting import plot_ablation_curves, plot_paired_deltas, plot_wrc_weights


def test_plot_wrc_weights(tmp_path):
    csv_path = tmp_path / "wrc_weights.csv"
    rows = [f"{e},model.{k}.m.0.wrc,{1 + 0.1 * e * k},{1 - 0.05 * e}" for e in (1, 2, 3) for k in (2, 4)]
    csv_path.write_text("epoch,layer,alpha,beta\n" + "\n".join(rows) + "\n")
    png = plot_wrc_weights(csv_path)
    assert png == tmp_path / "wrc_weights.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_plot_rejects_bad_rows(tmp_path):
    csv_path = tmp_path / "wrc_weights.csv"
    csv_path.write_text("epoch,layer,alpha,beta\n1,model.2.m.0.wrc,one,1.0\n")
    with pytest.raises(ValueError, match="wrc_weights.csv: row .* is not 'epoch,layer,alpha,beta'"):
        plot_wrc_weights(csv_path)


def test_ablation_curves_plot_each_variant(tmp_path):
    records = [
        {"variant": v, "seed": s, "curves": {"mAP50-95": [0.1 * s, 0.2 + 0.1 * s, 0.3]}}
        for v in ("plain", "fast")
        for s in (0, 1)
    ]
    png = plot_ablation_curves(records, tmp_path / "curves.png")
    assert png == tmp_path / "curves.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary file left behind


def test_paired_deltas_plot(tmp_path):
    series = {
        "channel": [(0.01, -0.02, 0.04), (0.03, 0.01, 0.05)],
        "rezero": [(-0.01, -0.03, 0.01), (0.0, -0.02, 0.02)],
    }
    png = plot_paired_deltas(series, tmp_path / "delta.png", "mAP50-95")
    assert png.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["delta.png"]
