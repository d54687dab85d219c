"""Virtual environments built with uv for one ultralytics release: the compat matrix's and the install tests'."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def find_uv() -> str:
    """The uv executable: this environment's (the dev extra installs it) or the one on PATH."""
    local = Path(sys.executable).with_name("uv")
    uv = str(local) if local.is_file() else shutil.which("uv")
    if not uv:
        raise FileNotFoundError("uv not found: pip install uv (it is in cspdet's dev extra)")
    return uv


def torch_requirements() -> list[str]:
    """torch and torchvision at the running interpreter's versions (without a local '+cu...' part)."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in ("torch", "torchvision")]


def build_env(folder: Path, ultralytics: str, cspdet: str = "", no_deps: bool = False) -> tuple[Path, str]:
    """Create (or refresh) a uv virtual environment in ``folder`` with ``ultralytics`` and ``cspdet``.

    Args:
        folder (Path): Environment folder.
        ultralytics (str): Requirement, e.g. 'ultralytics==8.3.0'; torch is pinned to this interpreter's.
        cspdet (str): How to install cspdet, as uv pip arguments ('-e REPO[dev]', a wheel), or '' for none.
        no_deps (bool): Install cspdet without its dependencies, after ultralytics.

    Returns:
        (Path): The environment's python.
        (str): The ultralytics version installed.
    """
    uv, python = find_uv(), folder / "bin" / "python"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "-q", "--allow-existing", "-p", version, str(folder)], check=True)
    install = [uv, "pip", "install", "-q", "--python", str(python)]
    steps = [[ultralytics, *torch_requirements()], ["--no-deps", *cspdet.split()]] if no_deps else [
        [*cspdet.split(), ultralytics, *torch_requirements()]]  # fmt: skip
    for step in steps:
        result = subprocess.run([*install, *step], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{' '.join(install + step)} failed:\n{result.stderr[-2000:]}")
    code = "from importlib.metadata import version; print(version('ultralytics'))"
    return python, subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
