"""Which ultralytics cspdet runs on: one probe per seam, the tested range, and the error for a disabled seam.

Each module of ``cspdet.integration`` that depends on ultralytics internals (a *seam*, ``SEAMS``) has ``probe()``,
which raises, saying what is missing, when the installed ultralytics lacks what that module needs. ``status()``
imports every seam and runs its probe once per process, and turns off the seams that need one that failed (``needs``);
``plugin.install()`` installs the seams that passed and warns once about the rest. Decisions rest on the probes
alone: the version only says whether the release is one cspdet was tested with. A cspdet feature whose seam is
disabled fails on use with ``UnsupportedUltralytics`` (``require``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from cspdet.errors import CspdetError


@dataclass(frozen=True)
class Seam:
    """A module of cspdet.integration that touches ultralytics internals.

    Args:
        provides (str): What it gives cspdet's users, in words.
        needs (tuple): Seams without which it must stay off, even when its own probe passes.
    """

    provides: str
    needs: tuple[str, ...] = ()


# The seams in install order.
SEAMS = {
    "registry": Seam(
        "cspdet modules in model YAMLs, fuse() folding, weights-only loading of cspdet checkpoints",
        needs=("training",),  # a cspdet model trained without the training seam would decay its WRC weights
    ),
    "configs": Seam("cspdet model YAMLs by bare name and the '-<scale>' suffix, their 'imports:'"),
    "training": Seam("WRC weights kept out of weight decay and recorded every epoch"),
    "data": Seam("'annotations:' (COCO JSON) data, bundled data YAMLs, augmentation pipeline YAMLs"),
    "evaluation": Seam("official COCO metrics in yolo val of 'annotations:' data"),
    "loggers": Seam("COCO numbers and WRC weights per epoch in results.csv and the experiment loggers"),
    "predictor": Seam("cspdet video"),
    "distributed": Seam("training across machines under torchrun"),
    "transfer": Seam("pretrained weights into modified model YAMLs, matched layer by layer"),
}
NEWEST_TESTED = "8.4.190"  # the newest release in docs/compat.md; the oldest is the lower bound in pyproject.toml


class UnsupportedUltralytics(CspdetError, RuntimeError):
    """A cspdet feature needs ultralytics internals that the installed release lacks."""


def supported_range() -> str:
    """The ultralytics requirement of the installed cspdet distribution (pyproject.toml), e.g. '<8.5,>=8.3.0'."""
    try:
        requires = metadata.requires("cspdet") or []
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return ""
    spec = next((r.split(";")[0][len("ultralytics") :] for r in requires if r.startswith("ultralytics")), "")
    return ",".join(sorted(map(str, SpecifierSet(spec.strip(" ()"))), key=lambda s: s[0] != ">"))  # lower bound first


def tested_range() -> str:
    """The releases cspdet was tested with, in words: the supported range and the newest release tested."""
    return f"ultralytics{supported_range()} (tested up to {NEWEST_TESTED})"


def is_tested(release: str) -> bool:
    """Whether ``release`` lies in the supported range and is not newer than the newest release tested."""
    try:
        version = Version(release)
    except InvalidVersion:
        return False
    return version in SpecifierSet(supported_range()) and version <= Version(NEWEST_TESTED)


@dataclass
class Status:
    """What cspdet found in the installed ultralytics (``status()``) and what ``plugin.install()`` did with it.

    Args:
        release (str): The installed ultralytics version.
        tested (bool): Whether the release is one cspdet was tested with (``is_tested``).
        failed (dict): Seam name -> why it is off (its probe failed, or a seam it needs is off).
        installed (bool): Whether install() has run (``cspdet.patching.PATCHED`` lists what it changed).
    """

    release: str
    tested: bool
    failed: dict[str, str]
    installed: bool = False

    def error(self, use: str, seams) -> UnsupportedUltralytics:
        """The error for ``use`` (e.g. "model YAML row 'C3WRC'") that needs the failed ``seams``."""
        probes = "; ".join(f"probe '{s}' failed: {self.failed[s]}" for s in seams)
        return UnsupportedUltralytics(
            f"{use} needs ultralytics internals that the installed ultralytics {self.release} lacks ({probes}). "
            f"cspdet supports {tested_range()}: pip install 'ultralytics{supported_range()}'"
        )


_status: Status | None = None


def probe(name: str):
    """Import the seam ``cspdet.integration.<name>`` and run its probe; raise whatever says why it cannot work."""
    importlib.import_module(f"cspdet.integration.{name}").probe()


def _off_by_needs(failed: dict[str, str]):
    """Add to ``failed`` every seam that needs a failed seam, directly or through others."""
    changed = True
    while changed:
        off = {name: seam for name, seam in SEAMS.items() if name not in failed and set(seam.needs) & set(failed)}
        for name, seam in off.items():
            failed[name] = f"needs {', '.join(repr(n) for n in seam.needs if n in failed)}, which is off"
        changed = bool(off)


def status() -> Status:
    """Probe every seam once per process and return the result."""
    global _status
    if _status is None:
        import ultralytics

        failed = {}
        for name in SEAMS:
            try:
                probe(name)
            except Exception as e:  # any failure disables the seam; the message says why
                failed[name] = f"{type(e).__name__}: {e}"
        _off_by_needs(failed)
        _status = Status(ultralytics.__version__, is_tested(ultralytics.__version__), failed)
    return _status


def upstream_features() -> dict[str, bool]:
    """The cspdet features that need a capability of recent ultralytics releases, and whether this one has it."""
    import inspect

    from ultralytics.cfg import check_dict_alignment
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.nn import tasks

    return {
        "C3k2WRC attn=True (YOLO26 attention blocks)": "attn" in inspect.signature(tasks.C3k2.__init__).parameters,
        "weights-only loading (ULTRALYTICS_SAFE_LOAD=true)": hasattr(tasks, "_SafeLoad"),
        "augmentation pipeline YAMLs (augmentations=...)": "allowed_custom_keys"
        in inspect.signature(check_dict_alignment).parameters,
        "COCO metrics of DDP validation": hasattr(DetectionValidator, "gather_stats"),
    }


def require(*seams: str, use: str):
    """Raise UnsupportedUltralytics, naming the release, the tested range and the probe, if a seam is disabled."""
    current = status()
    failed = [s for s in seams if s in current.failed]
    if failed:
        raise current.error(use, failed)
