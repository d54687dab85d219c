"""A user's own block, listed under a model YAML's ``imports:``, everywhere the stock `yolo` command and torchrun reach,
and its checkpoints in fresh shells; an installed package's block found through its entry point.

Every command runs in a folder other than the YAML's, and the YAML names its module by a path into a subfolder.
"""

import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, cspdet, run, yolo

from tools.envs import find_uv

TRAIN = ["epochs=1", "imgsz=32", "batch=4", "workers=0", "device=cpu", "plots=False", "exist_ok=True"]
BLOCKS = '''
"""A user's block: a 1x1 conv with a squeeze-and-excitation gate."""
from torch import nn
from ultralytics.nn.modules import Conv

import cspdet


class Gate(nn.Module):
    """Squeeze-and-excitation, used inside SqueezeGate (not a row of its own)."""

    def __init__(self, c, r=4):
        super().__init__()
        self.m = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, max(c // r, 1), 1), nn.SiLU(), nn.Conv2d(max(c // r, 1), c, 1),
            nn.Sigmoid()
        )

    def forward(self, x):
        return x * self.m(x)


@cspdet.register_module
class SqueezeGate(nn.Module):
    def __init__(self, c1, c2, r=4):
        super().__init__()
        self.conv = Conv(c1, c2, 1)
        self.gate = Gate(c2, r)

    def forward(self, x):
        return self.gate(self.conv(x))
'''


def model_yaml(imports: str, block: str = "SqueezeGate") -> str:
    return textwrap.dedent(f"""\
        nc: 2
        {imports}
        scales:
          n: [0.33, 0.25, 1024]
        backbone:
          - [-1, 1, Conv, [64, 3, 2]]
          - [-1, 1, Conv, [128, 3, 2]]
          - [-1, 1, {block}, [128]]
          - [-1, 1, Conv, [256, 3, 2]]
          - [-1, 2, C3k2WRC, [256, False, 0.5]]
        head:
          - [[2, 4], 1, Detect, [nc]]
        """)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """``model.yaml`` with ``imports: [blocks/sq_blocks.py]`` and its block module in a subfolder."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "blocks").mkdir()
    (folder / "blocks" / "sq_blocks.py").write_text(BLOCKS)
    (folder / "model.yaml").write_text(model_yaml("imports: [blocks/sq_blocks.py]"))
    return folder


@pytest.fixture(scope="module")
def trained(project, tiny_dataset, tmp_path_factory) -> Path:
    """The run folder of one epoch trained by the stock `yolo train`, started in a folder of its own."""
    runs = tmp_path_factory.mktemp("runs")
    out = yolo("train", f"model={project / 'model.yaml'}", f"data={tiny_dataset}", f"project={runs}", *TRAIN, cwd=runs)
    assert "sq_blocks.SqueezeGate" in out.stdout + out.stderr  # the layer table
    return runs / "train"


def one_line_error(result) -> str:
    """The one line a failed command printed, with no traceback."""
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.compat("lifecycle")
def test_stock_cli_trains_a_user_block(trained):
    assert (trained / "weights" / "best.pt").is_file() and (trained / "wrc_weights.csv").is_file()


@pytest.mark.compat("lifecycle")
def test_fresh_shell_validates_predicts_exports_the_checkpoint(trained, tiny_dataset, tmp_path):
    """From a folder that knows nothing of the block, as a new shell would: the checkpoint finds its module."""
    best, cpu = trained / "weights" / "best.pt", ["imgsz=32", "device=cpu", f"project={tmp_path}"]
    val = yolo("val", f"model={best}", f"data={tiny_dataset}", *cpu, cwd=tmp_path)
    assert re.search(r"^\s*all\s+4\s+8\s", val.stdout + val.stderr, re.M)
    image = next((tiny_dataset.parent / "images" / "val").iterdir())
    yolo("predict", f"model={best}", f"source={image}", *cpu, cwd=tmp_path)
    assert list((tmp_path / "predict").glob(f"{image.stem}.*"))  # the annotated image
    copy = tmp_path / "best.pt"
    shutil.copy(best, copy)
    yolo("export", f"model={copy}", "format=onnx", "imgsz=32", cwd=tmp_path)
    assert copy.with_suffix(".onnx").stat().st_size > 10_000


def test_cspdet_video_runs_the_checkpoint(trained, tmp_path):
    cspdet("shapes", "video", "clip.mp4", "--frames", "4", "--width", "64", "--height", "64", cwd=tmp_path)
    best = trained / "weights" / "best.pt"
    args = ["--model", str(best), "--source", "clip.mp4", "--out", "out.mp4", "--detections", "d.jsonl"]
    cspdet("video", *args, "--imgsz", "32", "--device", "cpu", cwd=tmp_path)
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 4


@pytest.mark.compat("lifecycle")
def test_resume_in_a_fresh_shell(project, tiny_dataset, tmp_path):
    """A run stopped after its first epoch resumes with `yolo train resume` from another folder."""
    (tmp_path / "first").mkdir()
    interrupted = f"""
from ultralytics import YOLO
model = YOLO({str(project / "model.yaml")!r})
def stop(trainer):
    raise KeyboardInterrupt("simulated interruption after epoch 1")
model.add_callback("on_model_save", stop)
model.train(data={str(tiny_dataset)!r}, epochs=2, project={str(tmp_path)!r}, name="run", device="cpu", workers=0,
            imgsz=32, batch=4, plots=False)
"""
    first = run([sys.executable, "-c", interrupted], cwd=tmp_path / "first", check=False)
    assert first.returncode != 0 and "simulated interruption" in first.stderr
    resumed = yolo("train", "resume", f"model={tmp_path / 'run' / 'weights' / 'last.pt'}", cwd=tmp_path)
    assert "Resuming training" in resumed.stdout + resumed.stderr
    assert len((tmp_path / "run" / "results.csv").read_text().splitlines()) == 1 + 2


def test_ddp_worker_imports_the_block(project, tiny_dataset, tmp_path):
    """Ultralytics' generated DDP worker (device=0,1 on GPUs) rebuilds the model from the YAML's path, here run on the
    CPU from another folder: it imports the block itself."""
    yaml = project / "model.yaml"
    parent = f"""
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.dist import generate_ddp_file
model = YOLO({str(yaml)!r})
args = dict(model={str(yaml)!r}, data={str(tiny_dataset)!r}, project={str(tmp_path)!r}, name="ddp", epochs=1,
            imgsz=32, batch=4, device="cpu", workers=0, plots=False)
print(generate_ddp_file(DetectionTrainer(overrides=args, _callbacks=model.callbacks)))
"""
    script = run([sys.executable, "-c", parent], cwd=tmp_path).stdout.strip().splitlines()[-1]
    (tmp_path / "worker").mkdir()
    worker = run([sys.executable, script], cwd=tmp_path / "worker")
    assert "sq_blocks.SqueezeGate" in worker.stdout + worker.stderr
    assert (tmp_path / "ddp" / "weights" / "best.pt").is_file()


@pytest.mark.compat("torchrun")
def test_cspdet_train_on_two_processes(project, tiny_dataset, tmp_path):
    """`cspdet train --nproc-per-node 2` (gloo on the CPU): every torchrun process imports the block."""
    out = cspdet(
        "train", "--nproc-per-node", "2", f"model={project / 'model.yaml'}", f"data={tiny_dataset}",
        f"project={tmp_path}", *TRAIN, cwd=tmp_path,
    )  # fmt: skip
    assert "torchrun job of 2 processes" in out.stdout + out.stderr
    assert (tmp_path / "train" / "weights" / "best.pt").is_file()


@pytest.fixture
def broken(tmp_path) -> Path:
    """A folder for model YAMLs whose imports cannot work; ``outside.py`` lies next to it."""
    (tmp_path / "outside.py").write_text(BLOCKS)
    (tmp_path / "models").mkdir()
    return tmp_path / "models"


@pytest.mark.compat("lifecycle")
@pytest.mark.parametrize(
    "imports, message",
    [
        ("imports: [sq_missing]", r"imports: 'sq_missing' is neither on sys.path nor in .*models$"),
        ("imports: [../outside.py]", r"imports: '\.\./outside\.py' leaves the YAML's folder .*models: give a path"),
    ],
)
def test_a_bad_import_is_one_line_before_any_work(broken, tiny_dataset, imports, message):
    yaml = broken / "model.yaml"
    yaml.write_text(model_yaml(imports))
    for command in (
        lambda: yolo("train", f"model={yaml}", f"data={tiny_dataset}", *TRAIN, cwd=broken.parent, check=False),
        lambda: cspdet("train", "--nproc-per-node", "2", f"model={yaml}", *TRAIN, cwd=broken.parent, check=False),
    ):
        line = one_line_error(command())
        assert re.search(rf"{re.escape(str(yaml))}: {message}", line), line
    assert not (broken.parent / "runs").exists()


def test_an_installed_package_is_found_through_its_entry_point(tmp_path):
    """A package declaring `SqueezeGate` in the entry point group cspdet.modules, installed with uv into a fresh
    environment (beside cspdet's wheel): a row naming it imports it, only then, and its checkpoints load anywhere."""
    package = tmp_path / "cspdet-sq"
    (package / "cspdet_sq").mkdir(parents=True)
    (package / "cspdet_sq" / "__init__.py").write_text(BLOCKS)
    (package / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "cspdet-sq"
        version = "0.1"

        [project.entry-points."cspdet.modules"]
        SqueezeGate = "cspdet_sq:SqueezeGate"
        """)
    )
    uv, wheels, env = find_uv(), tmp_path / "wheels", tmp_path / "env"
    for source in (REPO, package):  # built offline, with this environment's hatchling
        build = [uv, "build", "-q", "--wheel", "--offline", "--no-build-isolation", "--python", sys.executable]
        run([*build, "-o", str(wheels), str(source)], timeout=600)
    run([uv, "venv", "-q", "--system-site-packages", "--python", sys.executable, str(env)])
    python = str(env / "bin" / "python")
    run([uv, "pip", "install", "-q", "--offline", "--no-deps", "--python", python, *map(str, wheels.glob("*.whl"))])
    (tmp_path / "model.yaml").write_text(model_yaml(""))
    (tmp_path / "elsewhere").mkdir()
    code = """
import sys
from ultralytics import YOLO
import cspdet
YOLO("yolo11n.yaml")
print("stock model:", "cspdet_sq" in sys.modules)
model = YOLO("model.yaml")
print("our model:", type(model.model.model[2]).__module__, cspdet.__file__.startswith(sys.prefix))
model.save("model.pt")
"""
    out = run([python, "-c", code], cwd=tmp_path).stdout
    assert "stock model: False" in out and "our model: cspdet_sq True" in out
    load = "from ultralytics import YOLO; print(type(YOLO('../model.pt').model.model[2]).__name__)"
    assert run([python, "-c", load], cwd=tmp_path / "elsewhere").stdout.split()[-1] == "SqueezeGate"


def test_stock_processes_never_look_for_entry_points(tmp_path):
    """Entry points are read only for a row that no registered block answers."""
    code = "import sys, importlib.metadata as m\nfrom ultralytics import YOLO\nYOLO('csp_wrc-n.yaml')\n"
    code += "import cspdet.imports\nprint(cspdet.imports._entry_points.cache_info().misses)"
    assert run([sys.executable, "-c", code], cwd=tmp_path).stdout.split()[-1] == "0"
