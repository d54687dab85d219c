"""Module registry for ultralytics model YAMLs, resolved by ultralytics' own ``parse_model``.

Each registered row is parsed as ultralytics parses a row of the upstream module it is registered ``like``: the row
is swapped for that upstream module (the proxy) with the same channel argument, the original ``parse_model`` runs
(width, depth, ``max_channels``, rounding, repeats and channel bookkeeping stay upstream's), and the built proxy is
then replaced by the registered module constructed with the resolved ``c1, c2[, n]`` and the row's other arguments.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from ultralytics.nn import tasks
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import C3k
from ultralytics.utils import LOGGER


def _conv_args(p: nn.Module) -> list:
    return [p.conv.in_channels, p.conv.out_channels]


def _c3_args(p: nn.Module) -> list:
    return [p.cv1.conv.in_channels, p.cv3.conv.out_channels, len(p.m)]


def _c3k2_args(p: nn.Module) -> list:
    return [p.cv1.conv.in_channels, p.cv2.conv.out_channels, len(p.m), isinstance(p.m[0], C3k)]


@dataclass(frozen=True)
class Rule:
    """How rows registered ``like`` an upstream module are parsed.

    Args:
        proxy_args (int): Leading YAML arguments handed to the proxy (the channel argument, plus C3k2's c3k flag).
        resolved (Callable): Reads the resolved leading constructor arguments back from a built proxy.
    """

    proxy_args: int
    resolved: Callable[[nn.Module], list]


RULES = {
    "Conv": Rule(1, _conv_args),  # (c1, c2, *args): c2 scaled by width; n > 1 stacks n copies
    "C3": Rule(1, _c3_args),  # (c1, c2, n, *args): n scaled by depth and passed to the module
    "C3k2": Rule(2, _c3k2_args),  # (c1, c2, n, c3k, *args): as C3, and c3k forced on for scales m/l/x
}


@dataclass(frozen=True)
class Registration:
    module: type
    like: str


REGISTRY: dict[str, Registration] = {}


def register_module(module: type | None = None, *, like: str = "Conv", name: str | None = None):
    """Make ``module`` usable by name in ultralytics model YAMLs; works as a decorator too.

    Args:
        module (type): An ``nn.Module`` subclass whose constructor starts with ``(c1, c2, ...)``, or
            ``(c1, c2, n, ...)`` when ``like`` is a repeat module.
        like (str): Upstream module whose YAML parsing applies: 'Conv' (``c2`` scaled by width, n copies stacked),
            'C3' (also ``n`` scaled by depth and passed as the third argument) or 'C3k2' (as C3, and the fourth
            argument ``c3k`` forced on at scales m/l/x).
        name (str): Name used in YAML rows; defaults to the class name.

    Returns:
        (type): ``module``, unchanged.
    """
    if module is None:
        return lambda m: register_module(m, like=like, name=name)
    if not (isinstance(module, type) and issubclass(module, nn.Module)):
        raise TypeError(f"register_module expects an nn.Module subclass, got {module!r}")
    if like not in RULES:
        raise ValueError(f"register_module like='{like}' is not one of {sorted(RULES)}")
    name = name or module.__name__
    if name in vars(tasks) or name.startswith(("nn.", "torchvision.ops.")):
        raise ValueError(f"'{name}' already names an ultralytics or torch module; register it with name='...'")
    known = REGISTRY.get(name)
    if known and known.module is not module:
        raise ValueError(f"'{name}' is already registered for {known.module.__module__}.{known.module.__qualname__}")
    REGISTRY[name] = Registration(module, like)
    torch.serialization.add_safe_globals([module])  # restricted loading (ULTRALYTICS_SAFE_LOAD=1)
    return module


def _upstream_name(name: str) -> bool:
    return name.startswith(("nn.", "torchvision.ops.")) or name in vars(tasks)


class _CaptureRecords(logging.Filter):
    """Hold back LOGGER records (the layer table) so that proxy rows can be rewritten before they are shown."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


@contextlib.contextmanager
def _default_activation(act: nn.Module):
    """Build with the YAML ``activation:`` that upstream applied to the proxy (it resets it before returning)."""
    previous, Conv.default_act = Conv.default_act, act
    try:
        yield
    finally:
        Conv.default_act = previous


def _where(d: dict, i: int, row: list) -> str:
    return f"{d.get('yaml_file') or 'model YAML'} layer {i} {row}"


def parse_model(original: Callable, d: dict, ch, verbose: bool = True):
    """Run ultralytics' ``original`` parse_model on ``d`` with registered modules resolved through proxies."""
    rows = d["backbone"] + d["head"]
    ours = {}
    for i, row in enumerate(rows):
        name = row[2]
        if name in REGISTRY:
            ours[i] = REGISTRY[name]
        elif not isinstance(name, str) or not _upstream_name(name):
            raise ValueError(
                f"{_where(d, i, row)}: unknown module '{name}'. cspdet modules: {', '.join(sorted(REGISTRY))}; "
                "register your own with cspdet.register_module"
            )
    if not ours:
        return original(d, ch, verbose)

    def proxy_row(i, row):
        f, n, name, args = row
        if i not in ours:
            return row
        take = RULES[ours[i].like].proxy_args
        if len(args) < 1:
            raise ValueError(f"{_where(d, i, row)}: the first argument must be the output channels")
        return [f, n, ours[i].like, list(args[:take])]

    nb = len(d["backbone"])
    proxied = dict(d)
    proxied["backbone"] = [proxy_row(i, r) for i, r in enumerate(rows[:nb])]
    proxied["head"] = [proxy_row(i, r) for i, r in enumerate(rows[nb:], nb)]
    capture = _CaptureRecords()
    LOGGER.addFilter(capture)
    try:
        model, save = original(proxied, ch, verbose)
    finally:
        LOGGER.removeFilter(capture)
    table = {}
    for i, registration in ours.items():
        model[i], table[i] = _build(d, i, rows[i], registration, model[i])
    for record in capture.records:
        for i, line in table.items():
            if record.getMessage().startswith(f"{i:>3}{rows[i][0]!s:>20}"):
                record.msg, record.args = line, ()
        LOGGER.handle(record)
    return model, save


def _build(d: dict, i: int, row: list, registration: Registration, proxy: nn.Module):
    """Build the registered module that replaces ``proxy``; return it and its layer-table line."""
    f, _, name, args = row
    rule = RULES[registration.like]
    copies = list(proxy) if isinstance(proxy, nn.Sequential) else [proxy]  # 'Conv'-like rows with n > 1
    resolved = rule.resolved(copies[0])
    # A string argument naming a top-level YAML key takes its value, as ultralytics does for 'nc'.
    rest = [
        d[a] if isinstance(a, str) and a in d and a not in {"backbone", "head"} else a for a in args[rule.proxy_args :]
    ]
    call = [*resolved, *rest]
    if len(copies) > 1 and resolved[0] != resolved[1]:
        raise ValueError(
            f"{_where(d, i, row)}: {len(copies)} stacked copies need equal input and output channels, got "
            f"{resolved[0]} -> {resolved[1]}; change channels with a Conv row first"
        )
    act = next(m.act for m in proxy.modules() if isinstance(m, Conv))
    try:
        with _default_activation(act):
            built = [registration.module(*call) for _ in copies]
    except Exception as e:
        raise ValueError(f"{_where(d, i, row)}: {registration.module.__name__}{tuple(call)} failed: {e}") from e
    module = nn.Sequential(*built) if len(built) > 1 else built[0]
    module.i, module.f = i, f
    module.type = f"{registration.module.__module__}.{registration.module.__qualname__}"
    module.np = sum(p.numel() for p in module.parameters())
    n = len(copies) if registration.like == "Conv" else resolved[2]
    line = f"{i:>3}{f!s:>20}{n:>3}{module.np:10.0f}  {module.type:<45}{call!s:<30}"  # upstream's table format
    return module, line
