"""cspdet train: yolo train on this machine, or torchrun around it for several processes or nodes."""

import shlex
import sys
from pathlib import Path

import pytest
from helpers import run

PY = sys.executable
CSPDET = str(Path(PY).with_name("cspdet"))
YOLO = str(Path(PY).with_name("yolo"))
INTERPRETER = Path(CSPDET).read_text().splitlines()[0].removeprefix("#!")  # what runs the cspdet script
TORCHRUN = [INTERPRETER, "-m", "torch.distributed.run"]


def test_help_imports_no_torch():
    code = "import contextlib, sys\nfrom cspdet.cli import main\nwith contextlib.suppress(SystemExit):\n"
    code += "    main(['train', '--help'])\nprint('torch' in sys.modules)"
    out = run([PY, "-c", code]).stdout
    assert "yolo train" in out and out.split()[-1] == "False"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["model=m.yaml", "device=0,1"], [YOLO, "train", "model=m.yaml", "device=0,1"]),
        (
            ["--nproc-per-node", "2", "model=m.yaml", "device=cpu"],
            [*TORCHRUN, "--nnodes", "1", "--nproc-per-node", "2", "--standalone", YOLO, "train", "model=m.yaml"]
            + ["device=cpu"],
        ),
        (
            ["--nnodes", "2", "--rdzv-endpoint", "node0:29500", "--rdzv-id", "job7", "data=d.yaml", "device=0,1,2,3"],
            [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "4", "--rdzv-backend", "c10d", "--rdzv-endpoint"]
            + ["node0:29500", "--rdzv-id", "job7", YOLO, "train", "data=d.yaml", "device=0,1,2,3"],
        ),
        (
            ["--nnodes", "2", "--rdzv-endpoint", "h:1", "--timeout", "900", "device=cpu"],
            ["CSPDET_DDP_TIMEOUT=900.0", *TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend"]
            + ["c10d", "--rdzv-endpoint", "h:1", YOLO, "train", "device=cpu"],
        ),
    ],
)
def test_dry_run_prints_the_command(args, expected):
    assert shlex.split(run([CSPDET, "train", "--dry-run", *args]).stdout) == expected


def test_several_nodes_need_an_endpoint():
    result = run([CSPDET, "train", "--nnodes", "2", "device=0"], check=False)
    assert result.returncode == 1
    assert "cspdet train: error: --nnodes 2 needs --rdzv-endpoint HOST:PORT" in result.stderr


def test_two_processes_train_one_model(tiny_dataset, tmp_path):
    """The stock yolo train under torchrun with 2 CPU processes trains one model into one run folder."""
    args = [f"data={tiny_dataset}", "epochs=1", "imgsz=64", "batch=4", "device=cpu", "workers=0", "plots=False"]
    args += ["model=csp_wrc-n.yaml", f"project={tmp_path}", "name=two"]
    result = run([CSPDET, "train", "--nproc-per-node", "2", *args], env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert "torchrun job of 2 processes on 1 host(s), gloo on cpu" in result.stdout + result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["two"]
    assert {p.name for p in (tmp_path / "two" / "weights").iterdir()} == {"best.pt", "last.pt"}
    assert len((tmp_path / "two" / "results.csv").read_text().splitlines()) == 2
