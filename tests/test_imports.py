"""A model YAML's ``imports:`` and the pickles of users' classes, without ultralytics: items, errors, new processes."""

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cspdet.imports import BlockImportError, import_items, items

BLOCK = """
import torch
from torch import nn


class Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.w = nn.Parameter(torch.full((c,), 2.0))

    def forward(self, x):
        return x * self.w


class Twice(nn.Module):  # holds another class of the module, as blocks hold their parts
    def __init__(self, c):
        super().__init__()
        self.inner = Scale(c)

    def forward(self, x):
        return self.inner(self.inner(x))
"""


def python(code: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in ``cwd`` (so nothing of this process is on its path)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


MODULES = (f"user_blocks_{k}" for k in itertools.count())  # a module name per test: each imports its own


@pytest.fixture
def project(tmp_path) -> SimpleNamespace:
    """A folder with a model YAML (its rows do not matter here) and a module of blocks beside it; another folder."""
    folder, module = tmp_path / "project", next(MODULES)
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (folder / "model.yaml").write_text(f"imports: [{module}.py]\n")
    (folder / f"{module}.py").write_text(BLOCK)
    return SimpleNamespace(folder=folder, yaml=folder / "model.yaml", module=module, elsewhere=tmp_path / "elsewhere")


@pytest.mark.parametrize("item", ["../outside.py", "sub/../../outside.py", "/etc/outside.py"])
def test_a_path_that_leaves_the_folder_is_refused(project, item):
    (project.folder.parent / "outside.py").write_text("")
    with pytest.raises(BlockImportError, match=rf"model.yaml: imports: '{item}' leaves the YAML's folder"):
        items([item], project.yaml)


@pytest.mark.parametrize(
    "imports, message",
    [
        ("my_blocks", "imports must be a list of module names or .py files, got 'my_blocks'"),
        (["my-blocks"], "'my-blocks' is neither a module name nor a .py file"),
        (["sub/blocks.txt"], "'sub/blocks.txt' must be a .py file whose name is a Python module name"),
        (["missing.py"], "'missing.py' is not a file"),
    ],
)
def test_bad_items_are_named(project, imports, message):
    with pytest.raises(BlockImportError, match=message):
        items(imports, project.yaml)


def test_a_missing_module_is_one_line_naming_yaml_and_item(project):
    with pytest.raises(BlockImportError) as e:
        import_items(["no_such_blocks"], project.yaml)
    assert str(e.value) == f"{project.yaml}: imports: 'no_such_blocks' is neither on sys.path nor in {project.folder}"


def test_a_module_that_fails_names_why(project):
    (project.folder / "broken_blocks.py").write_text("import no_such_dependency\n")
    with pytest.raises(BlockImportError, match=r"imports: 'broken_blocks': importing it failed: ModuleNotFoundError"):
        import_items(["broken_blocks"], project.yaml)
    assert "broken_blocks" not in sys.modules


def test_a_module_name_is_found_in_the_yaml_folder(project):
    import_items([project.module], project.yaml)
    assert sys.modules[project.module].__file__ == str(project.folder / f"{project.module}.py")
    assert str(project.folder) not in sys.path  # only while it is imported


def test_a_checkpoint_finds_its_module_from_any_folder(project):
    """A pickled model of a module imported from a path loads in a fresh interpreter elsewhere; once the module is
    gone, the error names it and says how to make it importable."""
    import_items([f"{project.module}.py"], project.yaml)
    torch.save(sys.modules[project.module].Twice(3), project.folder / "model.pt")
    load = f"import torch; m = torch.load({str(project.folder / 'model.pt')!r}, weights_only=False); "
    load += "print(type(m.inner).__module__, m.inner.w.sum().item())"
    out = python(load, project.elsewhere)
    assert out.stdout.split() == [project.module, "6.0"], out.stderr
    (project.folder / f"{project.module}.py").unlink()
    gone = python(load, project.elsewhere)
    assert gone.returncode != 0
    last = gone.stderr.strip().splitlines()[-1]
    assert f"a checkpoint needs module '{project.module}' (recorded in {project.folder}), which is neither on" in last
    assert "install its package, add its folder to PYTHONPATH, or put it back in" in last


def test_weights_only_loading_imports_only_what_is_allowed(project):
    import_items([f"{project.module}.py"], project.yaml)
    torch.save(sys.modules[project.module].Scale(3), project.folder / "scale.pt")
    load = "import torch, ultralytics  # (with cspdet installed into it, as in every process that loads checkpoints)\n"
    load += f"print(type(torch.load({str(project.folder / 'scale.pt')!r}, weights_only=True)).__name__)"
    refused = python(load, project.elsewhere, PYTHONPATH=str(project.folder))
    assert "weights-only loading (ULTRALYTICS_SAFE_LOAD=true) imports only the modules allowed: " in refused.stderr
    assert f"CSPDET_SAFE_IMPORTS={project.module}" in refused.stderr
    allowed = {"PYTHONPATH": str(project.folder), "CSPDET_SAFE_IMPORTS": project.module}
    unsafe_class = python(load, project.elsewhere, **allowed)
    assert "may not build: register it with cspdet.register_module, or allow it with" in unsafe_class.stderr
    (project.folder / f"{project.module}.py").write_text(BLOCK + "\ntorch.serialization.add_safe_globals([Scale])\n")
    assert python(load, project.elsewhere, **allowed).stdout.strip() == "Scale"
