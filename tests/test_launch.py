"""The torchrun handshake without ultralytics: two processes on the loopback meet, agree or stop alike, form gloo."""

import json
import os
import socket
import subprocess
import sys

import pytest

# One process of the job: its report's cspdet version and whether it sees the run folder's marker come from argv.
# Version "none" stands for a process without cspdet: it reaches the job's store and says nothing.
PROCESS = """
import json, sys, time
from pathlib import Path
import torch, torch.distributed as dist
from cspdet import launch as job

version, marker = sys.argv[1], Path(sys.argv[2])
launch = job.Launch.from_env()
if version == "none":
    store = next(dist.rendezvous("env://", launch.rank, launch.world_size))[0]
    time.sleep(8)
    print("{}")
    sys.exit()
try:
    reports = job.join(launch, lambda: job.report(launch, {"cspdet": version}, "cpu", [], seen_by=launch.rank))
    total = torch.tensor([launch.rank + 1.0])
    dist.all_reduce(total)
    job.check_shared_folder(launch, marker.parent, marker)
    dist.destroy_process_group()
    outcome = {"reports": reports, "total": total.item(), "backend": "gloo"}
except job.LaunchError as e:
    outcome = {"error": str(e)}
outcome["ultralytics imported"] = "ultralytics" in sys.modules
print(json.dumps(outcome))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job(tmp_path, versions=("0.1.0", "0.1.0"), markers=(True, True), env=None) -> list[dict]:
    """Run a 2-process job on this machine; return what each process printed."""
    port, folder = free_port(), tmp_path / "run"
    folder.mkdir(exist_ok=True)
    (folder / "args.yaml").write_text("{}")
    processes = []
    for rank in (0, 1):
        world = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": 2, "LOCAL_WORLD_SIZE": 2}
        world |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, **(env or {})}
        marker = folder / ("args.yaml" if markers[rank] else "unseen.yaml")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", PROCESS, versions[rank], str(marker)],
                env={**os.environ, **{k: str(v) for k, v in world.items()}},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out.splitlines()[-1]))
    return outcomes


def test_processes_that_agree_form_one_group(tmp_path):
    outcomes = job(tmp_path)
    for outcome in outcomes:
        assert outcome["total"] == 3.0 and not outcome["ultralytics imported"]
        assert [r["seen_by"] for r in outcome["reports"]] == [0, 1]  # every report reaches every process
    assert outcomes[0]["reports"] == outcomes[1]["reports"]


def test_a_problem_of_one_process_stops_every_process_alike(tmp_path):
    outcomes = job(tmp_path, versions=("0.1.0", "0.2.0"))
    errors = [o["error"] for o in outcomes]
    assert errors[0] == errors[1]
    assert errors[0].startswith("cspdet cannot run this torchrun job (2 processes on 1 host(s)):\n- ")
    assert "mixed cspdet versions: 0.1.0 on rank 0 (" in errors[0] and "; 0.2.0 on rank 1 (" in errors[0]


def test_a_run_folder_one_process_cannot_see_stops_every_process(tmp_path):
    outcomes = job(tmp_path, markers=(True, False))
    for outcome in outcomes:
        assert "made by rank 0 is not visible to rank 1: put project= on a filesystem" in outcome["error"]


def test_a_process_that_never_reports_is_named(tmp_path):
    outcome, _ = job(tmp_path, versions=("0.1.0", "none"), env={"CSPDET_DDP_JOIN_TIMEOUT": "3"})
    assert "starting the job: no word from rank 1 within 3 s (CSPDET_DDP_JOIN_TIMEOUT)" in outcome["error"]


@pytest.mark.parametrize(
    "device, problem",
    [
        ("cpu", None),
        ("0,1,2", "device=0,1,2 names 3 device(s), but torchrun started 2 process(es) on this node"),
        ("0,0", "device=0,0: under torchrun, name distinct CUDA GPUs by index"),
    ],
)
def test_local_device(device, problem):
    from cspdet.launch import Launch, local_device

    found, why = local_device(device, Launch(0, 0, 2, 2, "host"))
    assert (why is None) == (problem is None) and (problem is None or why.startswith(problem))
    assert (str(found) == "cpu") == (device == "cpu")
