"""`cspdet bench ddp` (gloo overhead on the loopback) and the torchrun check of the GPU check, on the CPU."""

import sys
from pathlib import Path

from helpers import run

from cspdet.research.ddp_bench import torchrun_check

CSPDET = str(Path(sys.executable).with_name("cspdet"))


def test_bench_ddp_prints_its_table():
    args = ["--imgsz", "64", "--batch", "2", "--steps", "1", "--rounds", "1"]
    text = run([CSPDET, "bench", "ddp", *args], timeout=300).stdout
    assert "## Training across processes: gloo overhead on the loopback" in text
    header, _, row = text.strip().splitlines()[-3:]
    assert "2 processes DDP (gloo)" in header and "communication overhead" in header
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "csp_wrc-n.yaml" and cells[1].endswith(" M")
    assert all(float(c.removesuffix(" ms")) > 0 for c in cells[5:8])


def test_torchrun_check_trains_both_layouts_on_cpu(tmp_path):
    results = torchrun_check(tmp_path)
    assert [(r["layout"], r["backend"]) for r in results] == [
        ("1 node x 2 processes", "gloo on cpu"),
        ("2 nodes x 1 process", "gloo on cpu"),
    ]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["1x2", "2x1"]
