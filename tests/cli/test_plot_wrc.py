"""`cspdet plot-wrc`: the α/β plot of a run folder, and a clear error for a run without weighted shortcuts."""

from helpers import cspdet


def test_plot_from_run_folder_and_missing_csv(tmp_path):
    rows = [f"{e},model.{k}.m.0.wrc,{1 + 0.1 * e * k},{1 - 0.05 * e}" for e in (1, 2) for k in (2, 4)]
    (tmp_path / "wrc_weights.csv").write_text("epoch,layer,alpha,beta\n" + "\n".join(rows) + "\n")
    out = cspdet("plot-wrc", str(tmp_path), "--out", str(tmp_path / "ab.png")).stdout
    assert out.strip() == str(tmp_path / "ab.png") and (tmp_path / "ab.png").read_bytes()[:4] == b"\x89PNG"
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = cspdet("plot-wrc", str(empty), check=False)
    assert missing.returncode == 1
    assert (
        missing.stderr.strip() == f"cspdet plot-wrc: error: {empty / 'wrc_weights.csv'}: not found; cspdet "
        "writes wrc_weights.csv into runs of models with WRC"
    )
