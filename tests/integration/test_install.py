"""A regular (non-editable) install works from anywhere: bundled model YAMLs by bare name and auto-load."""

import sys
from pathlib import Path

from conftest import REPO, run


def test_wheel_install_trains_from_bundled_yaml(tiny_dataset, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(REPO)], timeout=300)
    where = (
        "import cspdet, _cspdet_hook; from cspdet.bundled import bundled; "
        "print(cspdet.__file__); print(_cspdet_hook.__file__); print(bundled('cfg', 'csp_wrc.yaml'))"
    )
    lines = run([str(python), "-c", where], cwd=tmp_path).stdout.split()
    site = Path(lines[0]).parents[1]
    assert site.is_relative_to(venv) and Path(lines[1]).parent == site
    assert Path(lines[2]) == site / "cspdet" / "cfg" / "csp_wrc.yaml"  # from the wheel, not the checkout
    assert (site / "cspdet.pth").is_file() and (site / "cspdet" / "datasets").is_dir()
    yolo = "import sys; from ultralytics.cfg import entrypoint; sys.exit(entrypoint())"  # the `yolo` console script
    out = run(
        [
            str(python),
            "-c",
            yolo,
            "train",
            "model=csp_wrc-n.yaml",
            f"data={tiny_dataset}",
            "epochs=1",
            "imgsz=64",
            "batch=4",
            "device=cpu",
            "workers=0",
            f"project={tmp_path}",
            "name=run",
            "val=False",
        ],
        cwd=tmp_path,
    )
    assert "cspdet.nn.stages.C3WRC" in out.stdout + out.stderr
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()
