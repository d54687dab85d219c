"""Training across nodes: two torchrun "nodes" of one CPU process each, on the loopback, with c10d rendezvous (gloo).

The job trains csp_wrc-n on 8 shapes images for 2 epochs; the test kills the training process of rank 1 in epoch 2,
then resumes the job on both nodes. Every torchrun runs in its own process group, killed if still running when its
launch ends.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO

from cspdet.integration import distributed
from cspdet.research.ddp_bench import loopback_nodes

PY = sys.executable
YOLO = Path(PY).with_name("yolo")
SCRIPT = Path(__file__).with_name("torchrun_train.py")
TRAIN = {"epochs": 2, "imgsz": 64, "batch": 4, "device": "cpu", "workers": 0, "plots": False}


def test_probe_accepts_the_installed_ultralytics():
    assert distributed.probe() is None


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """Data YAML of 8 training and 4 validation shapes images (64 px, COCO JSON)."""
    from cspdet.data.shapes import write_dataset

    root = write_dataset(tmp_path_factory.mktemp("shapes") / "shapes", train=8, val=4, size=64)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\n"
        "annotations:\n  train: annotations/instances_train.json\n  val: annotations/instances_val.json\n"
    )
    return data


def finish(processes, folder: Path, timeout: float) -> list:
    """Wait for every node; return (exit code, log) per node, or fail if one is still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    for node, process in enumerate(processes):
        try:
            process.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            pytest.fail(f"node {node} still runs after {timeout} s:\n{(folder / f'node{node}.log').read_text()}")
    return [(p.returncode, (folder / f"node{n}.log").read_text()) for n, p in enumerate(processes)]


@pytest.fixture(scope="module")
def job(shapes, tmp_path_factory):
    """The job of both nodes: killed at epoch 2, then resumed; the records of each launch."""
    root = tmp_path_factory.mktemp("job")
    killed, resumed = root / "killed", root / "resumed"
    killed.mkdir(), resumed.mkdir()
    arguments = {"model": "csp_wrc-n.yaml", "data": str(shapes), "project": str(root / "runs"), "name": "job", **TRAIN}
    with loopback_nodes([PY, SCRIPT, killed, json.dumps(arguments)], killed, env=[{"PAUSE_EPOCH": "1"}] * 2) as nodes:
        deadline = time.monotonic() + 300
        while not (killed / "paused").is_file() and time.monotonic() < deadline and None in [p.poll() for p in nodes]:
            time.sleep(0.5)
        if not (killed / "paused").is_file():
            logs = "\n".join((killed / f"node{n}.log").read_text() for n in (0, 1))
            pytest.fail(f"rank 1 never reached epoch 2:\n{logs}")
        time.sleep(1)  # rank 0 waits for rank 1 in its first backward pass of epoch 2
        os.kill(int((killed / "paused").read_text()), signal.SIGKILL)
        start = time.monotonic()
        after_kill = finish(nodes, killed, timeout=120)
        ended_in = time.monotonic() - start
    last = root / "runs" / "job" / "weights" / "last.pt"
    with loopback_nodes([PY, SCRIPT, resumed, json.dumps({"model": str(last), "resume": True})], resumed) as nodes:
        after_resume = finish(nodes, resumed, timeout=300)
    return SimpleNamespace(
        killed=killed, after_kill=after_kill, ended_in=ended_in, resumed=resumed, after_resume=after_resume, root=root
    )


@pytest.mark.compat("torchrun")
def test_killed_node_ends_the_job_on_every_node(job):
    assert [rc for rc, _ in job.after_kill] != [0, 0] and 0 not in [rc for rc, _ in job.after_kill]
    assert job.ended_in < 60  # no node waits for a timeout
    killed, survivor = sorted((log for _, log in job.after_kill), key=lambda log: "SIGKILL" not in log)
    assert "SIGKILL" in killed  # torchrun of the node that lost its process (rank 1) says so
    last = job.root / "runs" / "job" / "weights" / "last.pt"
    assert "rank 0 (" in survivor and "lost contact with the other processes" in survivor
    assert f"start it again with the same launch and 'resume model={last}' on every node" in survivor


@pytest.mark.compat("torchrun")
def test_resume_continues_the_job(job):
    for rc, log in job.after_resume:
        assert rc == 0, log
    assert "Resuming training" in job.after_resume[0][1]
    for rank in (0, 1):
        assert json.loads((job.resumed / f"rank{rank}.json").read_text())["start_epoch"] == 1
        assert not (job.resumed / f"seen-rank{rank}-epoch0.txt").exists()  # epoch 1 is not trained again


@pytest.mark.compat("torchrun")
def test_every_rank_ends_with_identical_weights(job):
    ranks = [json.loads((job.resumed / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["weights"] == ranks[1]["weights"]


@pytest.mark.compat("torchrun")
def test_ranks_train_on_disjoint_shares_of_each_epoch(job, shapes):
    images = sorted(p.name for p in (shapes.parent / "images" / "train").iterdir())
    for folder, epoch in ((job.killed, 0), (job.resumed, 1)):
        shares = [(folder / f"seen-rank{rank}-epoch{epoch}.txt").read_text().split() for rank in (0, 1)]
        assert [len(s) for s in shares] == [4, 4], shares  # batch=4 is the global batch: 2 images per rank
        assert sorted(shares[0] + shares[1]) == images


@pytest.mark.compat("torchrun")
def test_rank_zero_writes_one_complete_run_folder(job):
    (run,) = (job.root / "runs").iterdir()
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    expected = {"args.yaml", "results.csv", "wrc_weights.csv", "predictions.json", "coco_metrics.json"}
    assert files == expected | {"weights/last.pt", "weights/best.pt"}
    epochs = [line.split(",")[0].strip() for line in (run / "results.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]
    wrc_epochs = {line.split(",")[0] for line in (run / "wrc_weights.csv").read_text().splitlines()[1:]}
    assert wrc_epochs == {"1", "2"}
    assert json.loads((run / "coco_metrics.json").read_text())  # scored on rank 0 over both ranks' images


def test_launch_problems_stop_every_node_at_start(shapes, tmp_path):
    """Each node names two devices for its one process, and node 1 runs another cspdet: both nodes say both."""
    other = tmp_path / "other-cspdet"
    for folder in ("cspdet", "cfg"):
        shutil.copytree(REPO / folder, other / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "_cspdet_hook.py", other)
    version = other / "cspdet" / "version.py"
    version.write_text(version.read_text().replace('__version__ = "', '__version__ = "0.0.0+other-'))
    train = ["train", "model=csp_wrc-n.yaml", f"data={shapes}", f"project={tmp_path / 'runs'}", "device=0,1"]
    train += [f"{k}={v}" for k, v in TRAIN.items() if k != "device"]
    with loopback_nodes([YOLO, *train], tmp_path, env=[{}, {"PYTHONPATH": str(other)}]) as nodes:
        logs = finish(nodes, tmp_path, timeout=180)
    for rc, log in logs:
        assert rc != 0
        assert "cspdet cannot run this torchrun job (2 processes" in log
        assert re.search(r"mixed cspdet versions: .*(?<![-+.\w])0\.1\.0 on rank \d", log)
        assert re.search(r"mixed cspdet versions: .*0\.0\.0\+other-0\.1\.0 on rank \d", log)
        assert "device=0,1 names 2 device(s), but torchrun started 1 process(es) on this node" in log
    assert not (tmp_path / "runs").exists()  # stopped before the run folder, the datasets and the model


def test_node_without_cspdet_stops_the_job_at_start(tiny_dataset, tmp_path):
    """One node runs plain ultralytics (auto-load off): the other stops after its join timeout, never trains alone."""
    train = ["train", "model=yolo11n.yaml", f"data={tiny_dataset}", f"project={tmp_path / 'runs'}"]
    train += [f"{k}={v}" for k, v in TRAIN.items()]
    env = [{"CSPDET_DDP_JOIN_TIMEOUT": "10"}, {"CSPDET_AUTOLOAD": "0"}]
    with loopback_nodes([YOLO, *train], tmp_path, env=env) as nodes:
        (rc0, log0), (rc1, log1) = finish(nodes, tmp_path, timeout=180)
    assert rc0 != 0 and rc1 != 0
    assert re.search(r"starting the job: no word from rank \d within 10 s \(CSPDET_DDP_JOIN_TIMEOUT\)", log0)
    assert not (tmp_path / "runs" / "train" / "weights").exists()
