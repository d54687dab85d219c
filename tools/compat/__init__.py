"""The ultralytics release matrix: an isolated environment per release, the ``compat`` tests in it, docs/compat.md
(``python -m tools.compat [RELEASE ...]``).

Each release gets a uv virtual environment holding this checkout (editable, with its dev extras), that ultralytics
release and the running interpreter's torch. The tests marked ``compat`` then run there in one pytest run (two xdist
workers, as the README's test command), with the pytest plugin ``tools.compat.plugin`` recording each test's check
(the marker's argument), outcome and time.
Results are kept per release in docs/compat.json, so that a run of some releases rewrites only their rows; with
``resume`` a release already run at the current commit is skipped.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from cspdet.files import atomic_write
from tools.benchdoc import REPO, commit, update_section
from tools.compat.plugin import REPORT_ENV
from tools.envs import build_env, torch_requirements

RELEASES = (  # both sides of the boundaries in the seams' history (docs/compat.md), the first and the newest
    "8.3.0", "8.3.153", "8.3.154", "8.3.237", "8.3.253", "8.4.0", "8.4.66", "8.4.67", "8.4.109", "newest",
)  # fmt: skip
CHECKS = {  # compat marker argument -> column of docs/compat.md
    "probes": "probes",
    "parsing": "parsing = upstream",
    "lifecycle": "train, val, predict, resume",
    "export": "ONNX export",
    "safe loading": "safe loading",
    "fuse": "fused = unfused",
    "COCO": "COCO JSON",
    "video": "video",
    "torchrun": "torchrun, 2 nodes",
    "pretrained": "pretrained into modified YAMLs",
}


def run_release(release: str, envs: Path, repo: Path) -> dict:
    """Build the environment of ``release`` ('newest': the newest in range) and run the compat tests in it."""
    from cspdet.integration.compat import supported_range

    folder = envs / release
    requirement = f"ultralytics{supported_range()}" if release == "newest" else f"ultralytics=={release}"
    start = time.perf_counter()
    python, installed = build_env(folder, requirement, f"-e {repo}[dev]")
    env_seconds = time.perf_counter() - start
    report, scratch = folder / "compat-report.json", folder / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    report.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}  # only that environment
    env.update({REPORT_ENV: str(report), "TMPDIR": str(scratch), "YOLO_CONFIG_DIR": str(scratch / "yolo")})
    pytest = [python, "-m", "pytest", "-m", "compat", "-p", "tools.compat.plugin", "-p", "no:cacheprovider"]
    pytest += ["-n", "2", "--dist", "loadscope"]  # two workers, as the README's test command
    pytest += ["--continue-on-collection-errors", "-q", "-rfE"]
    start = time.perf_counter()
    with open(folder / "pytest.log", "w") as log:
        subprocess.run(pytest, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    found = json.loads(report.read_text()) if report.is_file() else {"tests": {}, "collection_errors": ["pytest"]}
    checks = {}
    for test in found["tests"].values():
        check = checks.setdefault(test["check"], {"outcome": "skipped", "seconds": 0.0})
        check["seconds"] += test["seconds"]
        if test["outcome"] == "failed" or check["outcome"] == "failed":
            check["outcome"] = "failed"
        elif test["outcome"] == "passed":
            check["outcome"] = "passed"
    return {
        "ultralytics": installed,
        "commit": commit(repo),
        "python": platform.python_version(),
        "torch": torch_requirements()[0].split("==")[1],
        "date": time.strftime("%Y-%m-%d"),
        "environment seconds": round(env_seconds, 1),
        "test seconds": round(seconds, 1),
        "checks": {k: {"outcome": v["outcome"], "seconds": round(v["seconds"], 1)} for k, v in checks.items()},
        "failed": sorted(n for n, t in found["tests"].items() if t["outcome"] == "failed"),
        "collection errors": found["collection_errors"],
        "features": found.get("features", {}),
        "log": str(folder / "pytest.log"),
    }


def run_matrix(releases, envs: Path, doc: Path, resume: bool, command: str) -> dict:
    """Run every release in ``releases``; record each in ``doc``'s JSON twin as it finishes; write ``doc``."""
    from ultralytics.utils import TQDM

    repo, store = REPO, doc.with_suffix(".json")
    results = json.loads(store.read_text()) if store.is_file() else {}
    done = {r.get("requested", v): r["commit"] for v, r in results.items()}
    todo = [r for r in releases if not (resume and done.get(r) == commit(repo))]
    bar = TQDM(todo, desc="ultralytics releases", total=len(todo))
    for release in bar:
        bar.desc = f"ultralytics {release}"
        result = run_release(release, envs, repo)
        results[result["ultralytics"]] = {"requested": release, **result}
        with atomic_write(store) as f:
            json.dump(dict(sorted(results.items(), key=lambda kv: _version(kv[0]))), f, indent=1)
        write_doc(doc, results, command)
    write_doc(doc, results, command)
    return results


def _version(release: str):
    from packaging.version import Version

    return Version(release)


def _cell(check: dict | None) -> str:
    if check is None:
        return "not run"
    mark = {"passed": "✓", "failed": "✗ FAILED", "skipped": "n/a"}[check["outcome"]]
    return f"{mark} {check['seconds']:.0f} s" if check["outcome"] != "skipped" else mark


def write_doc(doc: Path, results: dict, command: str):
    """Rewrite the matrix (one row per release, one column per check) and features sections of docs/compat.md."""
    from cspdet.research.report import markdown_table

    ordered = sorted(results.items(), key=lambda kv: _version(kv[0]))
    rows = [
        [
            v,
            *(_cell(r["checks"].get(c)) for c in CHECKS),
            f"{r['environment seconds']:.0f} s",
            f"{r['test seconds']:.0f} s",
        ]
        for v, r in ordered
    ]
    notes = [
        f"- {v}: " + "; ".join([*(f"failed {n}" for n in r["failed"]), *(
            f"could not import {n} (not a compat test file)" for n in r["collection errors"])])
        for v, r in ordered
        if r["failed"] or r["collection errors"]
    ]  # fmt: skip
    environments = ", ".join(
        f"Python {p}, torch {t}" for p, t in sorted({(r["python"], r["torch"]) for _, r in ordered})
    )
    matrix = markdown_table(["ultralytics", *CHECKS.values(), "environment", "tests"], rows)
    body = f"{environments}, CPU. Cells: the check's outcome and the time its tests took.\n\n{matrix}\n"
    update_section(doc, "matrix", "Matrix", body + ("\nNotes:\n" + "\n".join(notes) if notes else ""), command)
    features = []
    for feature in sorted({f for _, r in ordered for f in r["features"]}):
        having = [v for v, r in ordered if r["features"].get(feature)]
        features.append([feature, having[0] if having else "none tested", len(having)])
    table = markdown_table(["feature", "oldest release in the matrix that has it", "releases with it"], features)
    update_section(doc, "features", "Features that need a recent ultralytics", table, command)
