"""The built wheel, installed into a fresh environment, gives a pip user every command from any folder; uv installs
of the checkout, editable or not, give a working environment too."""

import json
import re
import shutil
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest
from helpers import REPO, run
from helpers.coco_cases import edge_case

from cspdet.cli import COMMANDS
from cspdet.cli.bench import BENCHMARKS


def uv_env(folder: Path, *install: str) -> Path:
    """A new uv environment (not inheriting this one's packages) in ``folder`` with ``uv pip install INSTALL``; its
    dependencies are pinned to this environment's versions, so that uv takes them from its cache. Returns its bin/."""
    pins = {}  # the first of a name is the one imported (an environment can see its base's site-packages too)
    for d in distributions():
        pins.setdefault(d.metadata["Name"].lower(), d.version)
    pins.pop("cspdet", None)
    (folder / "pins.txt").write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    env = folder / "env"
    run([uv, "venv", "-q", "--python", sys.executable, str(env)])
    run([uv, "pip", "install", "-q", "--python", str(env / "bin" / "python"), "-c", str(folder / "pins.txt"),
         *install], timeout=900)  # fmt: skip
    return env / "bin"


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A new uv environment with the wheel built from this checkout installed."""
    folder = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder), str(REPO)])
    return uv_env(folder, str(next(folder.glob("cspdet-*.whl"))))


def test_wheel_holds_the_package_hook_and_yamls_only(wheel_env, tmp_path):
    where = run([str(wheel_env / "python"), "-c", "import cspdet; print(cspdet.__file__)"], cwd=tmp_path).stdout
    site = Path(where.strip()).parents[1]
    assert site.is_relative_to(wheel_env.parent)
    assert all((site / f).is_file() for f in ("cspdet.pth", "_cspdet_hook.py", "cspdet/cfg/yolo11_wrc.yaml"))
    assert (site / "cspdet" / "datasets" / "shapes.yaml").is_file()
    assert not any((site / name).exists() for name in ("cfg", "datasets", "tools", "tests"))


@pytest.mark.parametrize("command", [[c] for c in COMMANDS] + [["bench", b] for b in BENCHMARKS], ids=" ".join)
def test_every_help_from_outside_the_checkout(wheel_env, tmp_path, command):
    out = run([str(wheel_env / "cspdet"), *command, "--help"], cwd=tmp_path).stdout
    assert out.startswith(f"usage: cspdet {' '.join(command)}")


def test_real_runs_from_outside_the_checkout(wheel_env, tmp_path):
    cspdet = str(wheel_env / "cspdet")
    info = run([cspdet, "info"], cwd=tmp_path).stdout
    assert re.search(r"^cspdet +0\.1\.0 \(.*site-packages", info, re.M)
    assert re.search(r"^ultralytics +8\.", info, re.M) and re.search(r"^torch +2\.", info, re.M)

    run([cspdet, "shapes", "dataset", "ds", "--train", "4", "--val", "2", "--size", "64"], cwd=tmp_path)
    run([cspdet, "shapes", "video", "v.mp4", "--frames", "8", "--width", "96", "--height", "64"], cwd=tmp_path)
    assert len(json.loads((tmp_path / "ds/annotations/instances_val.json").read_text())["images"]) == 2

    annotations, predictions = edge_case()
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    (tmp_path / "p.json").write_text(json.dumps(predictions))
    run([cspdet, "eval", "--annotations", "a.json", "--predictions", "p.json", "--out", "m.json"], cwd=tmp_path)
    assert json.loads((tmp_path / "m.json").read_text())["AP50"] >= 0

    rows = [f"{e},model.{k}.m.0.wrc,{1 + 0.1 * e},{1 - 0.05 * e}" for e in (1, 2) for k in (2, 4)]
    (tmp_path / "wrc_weights.csv").write_text("epoch,layer,alpha,beta\n" + "\n".join(rows) + "\n")
    run([cspdet, "plot-wrc", "wrc_weights.csv", "--out", "wrc.png"], cwd=tmp_path)
    assert (tmp_path / "wrc.png").read_bytes()[:4] == b"\x89PNG"

    python = str(wheel_env / "python")
    run([python, "-c", "from ultralytics import YOLO; YOLO('csp_wrc-n.yaml').save('m.pt')"], cwd=tmp_path)
    args = ["--model", "m.pt", "--source", "v.mp4", "--out", "out.mp4", "--detections", "d.jsonl", "--imgsz", "64"]
    run([cspdet, "video", *args], cwd=tmp_path)
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 8 and (tmp_path / "out.mp4").stat().st_size


@pytest.mark.parametrize("editable", [True, False], ids=["uv pip install -e .", "uv pip install ."])
def test_uv_installs_of_the_checkout(tmp_path, editable):
    """uv reads a project's static dependencies; an editable install also needs 'editables' at run time, which only
    the editable wheel's metadata names. Without extras, every start-up is clean, cspdet loads with ultralytics, and
    the editable install maps the package alone: no other folder of the checkout becomes importable."""
    python = str(uv_env(tmp_path, *(["-e", str(REPO)] if editable else [str(REPO)])) / "python")
    code = "import sys, ultralytics, cspdet; print(cspdet.__file__, 'cspdet' in sys.modules)"
    out = run([python, "-c", code], cwd=tmp_path)
    where, loaded = out.stdout.split()
    assert out.stderr == "" and loaded == "True"
    assert Path(where) == REPO / "cspdet" / "__init__.py" if editable else "site-packages" in where
    for folder in ("tools", "tests", "cfg", "datasets", "docs"):
        missing = run([python, "-c", f"import {folder}"], cwd=tmp_path, check=False)
        assert missing.returncode == 1 and f"No module named '{folder}'" in missing.stderr
    code = "from ultralytics import YOLO; print(type(YOLO('csp_wrc-n.yaml').model.model[2]).__name__)"
    built = run([python, "-c", code], cwd=tmp_path)
    assert built.stdout.strip().endswith("C3WRC") and "Error processing line" not in built.stderr
