"""The `cspdet` command itself: every subcommand's help without torch, exit statuses, `python -m cspdet`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import OFFLINE_ENV, cspdet, run

from cspdet.cli import COMMANDS
from cspdet.cli.bench import BENCHMARKS

HELPS = [[name] for name in COMMANDS] + [["bench", name] for name in BENCHMARKS]


@pytest.mark.parametrize("command", HELPS, ids=" ".join)
def test_help_answers_without_importing_torch(command):
    code = (
        "import sys\nfrom cspdet.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\nprint('imported:', sorted({'torch', 'ultralytics'} & set(sys.modules)))"
    )
    out = run([sys.executable, "-c", code, *command, "--help"]).stdout
    assert out.startswith("usage: cspdet " + " ".join(command)) and out.rstrip().endswith("imported: []")


def test_top_level_help_lists_every_command():
    out = cspdet("--help").stdout
    assert all(f"    {name}" in out for name in COMMANDS)
    assert run([sys.executable, "-m", "cspdet", "--version"]).stdout.startswith("cspdet ")


def test_usage_error_is_status_2_and_failure_status_1(tmp_path):
    usage = cspdet("eval", "--annotations", "a.json", check=False)
    assert usage.returncode == 2 and "the following arguments are required: --predictions" in usage.stderr
    missing = tmp_path / "missing.json"
    failure = cspdet("eval", "--annotations", str(missing), "--predictions", str(missing), check=False)
    assert failure.returncode == 1
    assert failure.stderr.strip().splitlines() == [f"cspdet eval: error: {missing}: file not found"]


def test_ctrl_c_is_status_130_and_leaves_nothing_half_written(tmp_path):
    """Interrupted while writing a large shapes dataset: exit 130, and the dataset folder does not exist."""
    command = [str(Path(sys.executable).with_name("cspdet")), "shapes", "dataset", str(tmp_path / "shapes")]
    # SIG_DFL: a shell that runs the tests in the background makes them ignore SIGINT, and Python keeps ignoring it
    process = subprocess.Popen([*command, "--train", "100000"], env={**os.environ, **OFFLINE_ENV}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(tmp_path.iterdir()):  # its temporary folder: past start-up, into the rendering
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "cspdet shapes: interrupted" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its temporary folder
