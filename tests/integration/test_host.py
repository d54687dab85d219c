"""cspdet never breaks its host: other ultralytics releases, a newer one, a changed one, in fresh processes.

Environments are built with uv (cspdet's dev extra) from the package index, as `python -m tools.compat` builds them.
"""

import re
import shutil
import sys
from pathlib import Path

import pytest
import ultralytics
from helpers import REPO, run

from tools.envs import build_env, find_uv

TRAIN = ["epochs=1", "imgsz=64", "batch=4", "workers=0", "device=cpu", "exist_ok=True", "plots=False"]
YOLO = "import sys; from ultralytics.cfg import entrypoint; sys.exit(entrypoint())"  # the `yolo` console script
UNTESTED = "is not a release cspdet was tested with"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """cspdet's wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    run([find_uv(), "build", "-q", "--wheel", "-o", str(out), str(REPO)], timeout=300)
    return next(out.glob("cspdet-*.whl"))


def yolo_train(python, model, data, project, **kwargs):
    return run(
        [str(python), "-c", YOLO, "train", f"model={model}", f"data={data}", f"project={project}", *TRAIN], **kwargs
    )


def test_release_below_the_range(wheel, tiny_dataset, tmp_path):
    """ultralytics 8.2 with cspdet installed without its dependencies: the host works, cspdet YAMLs fail clearly."""
    python, version = build_env(tmp_path / "env", "ultralytics==8.2.103", str(wheel), no_deps=True)
    assert version == "8.2.103"
    for autoload in ("1", "0"):
        imported = run([str(python), "-c", "import ultralytics"], cwd=tmp_path, env={"CSPDET_AUTOLOAD": autoload})
        assert (UNTESTED in imported.stderr + imported.stdout) == (autoload == "1")
    out = yolo_train(python, "yolov8n.yaml", tiny_dataset, tmp_path, cwd=tmp_path)
    assert (tmp_path / "train" / "weights" / "last.pt").is_file()
    log = out.stdout + out.stderr
    assert log.count(UNTESTED) == 1 and "probe 'registry' failed (ImportError: cannot import name" in log
    ours = yolo_train(python, "csp_wrc-n.yaml", tiny_dataset, tmp_path, cwd=tmp_path, check=False)
    assert ours.returncode != 0
    assert re.search(
        r"UnsupportedUltralytics: csp_wrc-n.yaml: module 'C3WRC' needs ultralytics internals that the installed "
        r"ultralytics 8.2.103 lacks \(probe 'registry' failed: ImportError: .*\)\. cspdet supports "
        r"ultralytics>=8.3.0,<8.5 \(tested up to [\d.]+\)",
        ours.stderr,
    ), ours.stderr[-3000:]


def test_installing_cspdet_keeps_the_installed_release(wheel, tmp_path):
    """Installing cspdet's wheel, with its dependencies, into an environment with ultralytics 8.3.0 keeps 8.3.0."""
    python, version = build_env(tmp_path / "env", "ultralytics==8.3.0")
    run([find_uv(), "pip", "install", "-q", "--python", str(python), str(wheel)], timeout=600)
    code = "from importlib.metadata import version; import ultralytics, cspdet; print(version('ultralytics'))"
    assert run([str(python), "-c", code], cwd=tmp_path).stdout.split()[-1] == "8.3.0"


def changed_ultralytics(tmp_path: Path, file: str, edit) -> Path:
    """A copy of the installed ultralytics with ``edit(text)`` applied to ``file``; returns the folder holding it."""
    site = tmp_path / "changed"
    shutil.copytree(Path(ultralytics.__file__).parent, site / "ultralytics", ignore=shutil.ignore_patterns("*.pyc"))
    path = site / "ultralytics" / file
    path.write_text(edit(path.read_text()))
    return site


def test_newer_release_warns_once_and_works(tiny_dataset, tmp_path):
    site = changed_ultralytics(
        tmp_path, "__init__.py", lambda t: re.sub(r'__version__ = ".*"', '__version__ = "8.5.0"', t)
    )
    env = {"PYTHONPATH": str(site)}
    out = yolo_train(sys.executable, "csp_wrc-n.yaml", tiny_dataset, tmp_path, cwd=tmp_path, env=env)
    log = out.stdout + out.stderr
    assert log.count(UNTESTED) == 1 and "8.5.0 is not a release" in log and "every probe passed" in log
    assert "cspdet.nn.stages.C3WRC" in log and (tmp_path / "train" / "wrc_weights.csv").is_file()


def test_failed_probe_keeps_the_host_working(tiny_dataset, tmp_path):
    """A release whose check_det_dataset renamed its argument: the data seam is off, everything else works."""
    renamed = (
        "\n_check_det_dataset = check_det_dataset\n\n\ndef check_det_dataset(data_file, autodownload=True, **kwargs):\n"
        "    return _check_det_dataset(data_file, autodownload, **kwargs)\n"
    )
    site = changed_ultralytics(tmp_path, "data/utils.py", lambda t: t + renamed)
    env = {"PYTHONPATH": str(site)}
    stock = yolo_train(sys.executable, "yolo11n.yaml", tiny_dataset, tmp_path, cwd=tmp_path, env=env)
    log = stock.stdout + stock.stderr
    assert log.count("probe 'data' failed (TypeError: check_det_dataset no longer takes the dataset first)") == 1
    assert (tmp_path / "train" / "weights" / "last.pt").is_file()
    code = "from ultralytics import YOLO; print(type(YOLO('csp_wrc-n.yaml').model.model[2]))"
    assert "cspdet.nn.stages.C3WRC" in run([sys.executable, "-c", code], cwd=tmp_path, env=env).stdout
    coco = yolo_train(sys.executable, "yolo11n.yaml", "shapes.yaml", tmp_path, cwd=tmp_path, env=env, check=False)
    assert coco.returncode != 0
    assert re.search(
        r"UnsupportedUltralytics: data=shapes.yaml \(a cspdet dataset\) needs ultralytics internals that the installed "
        rf"ultralytics {re.escape(ultralytics.__version__)} lacks \(probe 'data' failed: TypeError: check_det_dataset",
        coco.stderr,
    ), coco.stderr[-3000:]


def test_import_ultralytics_never_raises_for_cspdet(tmp_path):
    """A cspdet that cannot even load its plugin leaves `import ultralytics` working, with one warning."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['cspdet.integration.plugin'] = None\n")
    out = run([sys.executable, "-c", "import ultralytics; print('ok')"], env={"PYTHONPATH": str(tmp_path)})
    assert out.stdout.strip().endswith("ok")
    assert out.stderr.count("WARNING cspdet was not loaded: ") == 1 and "cspdet.integration.plugin" in out.stderr
