"""Module registry for ultralytics model YAMLs, resolved by ultralytics' own ``parse_model``.

Each registered row is parsed as ultralytics parses a row of the upstream module it is registered ``like``: the row
is swapped for that upstream module (the proxy) with the same channel argument, the original ``parse_model`` runs
(width, depth, ``max_channels``, rounding, repeats and channel bookkeeping stay upstream's), and the built proxy is
then replaced by the registered module constructed with the resolved ``c1, c2[, n]`` and the row's other arguments.

A registered subclass of the upstream module with an ``adopt(stage, **extra)`` classmethod (cspdet's C3WRC, C2fWRC,
C3k2WRC) is not constructed again: the proxy gets every row argument that the installed upstream class takes (matched
by parameter name), so it is exactly the stage ultralytics builds, and the subclass adopts it in place with the
remaining arguments. Such a model starts from the stock model's weights for the same seed.

A row's ``wrc`` argument (of a module whose constructor or ``adopt`` takes one) is parsed once, at the row, into a
``WRCSpec`` that goes down to every bottleneck; a bad value is an error naming the row. A row naming a module that is
not registered yet loads the installed package that declares it (entry point group ``cspdet.modules``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from ultralytics.nn import tasks
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import C3k
from ultralytics.utils import LOGGER

from cspdet.catalog import BLOCKS
from cspdet.errors import CspdetError
from cspdet.imports import ENTRY_POINTS, load_entry_point, rebuild, remember_class
from cspdet.nn.upstream import parameters, upstream_arguments
from cspdet.nn.wrc import WRCSpec
from cspdet.patching import wrap, wrap_everywhere


def _conv_args(p: nn.Module) -> list:
    return [p.conv.in_channels, p.conv.out_channels]


def _c3_args(p: nn.Module) -> list:
    return [p.cv1.conv.in_channels, p.cv3.conv.out_channels, len(p.m)]


def _c2f_args(p: nn.Module) -> list:
    return [p.cv1.conv.in_channels, p.cv2.conv.out_channels, len(p.m)]


def _c3k2_args(p: nn.Module) -> list:
    return [p.cv1.conv.in_channels, p.cv2.conv.out_channels, len(p.m), isinstance(p.m[0], C3k)]


@dataclass(frozen=True)
class Rule:
    """How rows registered ``like`` an upstream module are parsed.

    Args:
        proxy_args (int): Leading YAML arguments handed to the proxy (the channel argument, plus C3k2's c3k flag).
        resolved (Callable): Reads the resolved leading constructor arguments back from a built proxy.
        repeats (bool): Whether the constructor takes ``n`` after ``c1, c2`` (ultralytics' repeat modules).
    """

    proxy_args: int
    resolved: Callable[[nn.Module], list]
    repeats: bool = True


RULES = {
    "Conv": Rule(1, _conv_args, repeats=False),  # (c1, c2, *args): c2 scaled by width; n > 1 stacks n copies
    "C3": Rule(1, _c3_args),  # (c1, c2, n, *args): n scaled by depth and passed to the module
    "C2f": Rule(1, _c2f_args),  # as C3
    "C3k2": Rule(2, _c3k2_args),  # (c1, c2, n, c3k, *args): as C3, and c3k forced on for scales m/l/x
}


@dataclass(frozen=True)
class Registration:
    """A module usable in YAML rows, parsed like the upstream module ``like``; ``adopts``: see the module docstring."""

    module: type
    like: str

    @property
    def adopts(self) -> bool:
        return issubclass(self.module, getattr(tasks, self.like)) and callable(getattr(self.module, "adopt", None))

    def split(self, args: list, where: str) -> tuple[list, dict]:
        """Split an adopting row's arguments after ``c2`` into the upstream class's (in its order) and ``adopt``'s."""
        skip = 4 if RULES[self.like].repeats else 3  # self, c1, c2[, n]
        ours = parameters(self.module.__init__)[skip:]
        values = {p.name: p.default for p in ours} | {p.name: a for p, a in zip(ours, args[1:])}
        extra = {p.name for p in parameters(self.module.adopt)[1:]}  # after the stage
        try:
            upstream = upstream_arguments(
                self.module, getattr(tasks, self.like), skip, {k: v for k, v in values.items() if k not in extra}, where
            )
        except ValueError as e:  # names the row
            raise RowError(str(e)) from None
        return [args[0], *upstream], {k: v for k, v in values.items() if k in extra}


class RowError(CspdetError, ValueError):
    """A model YAML row that cspdet cannot build; the message names the file and the row."""


def _spec(wrc, where: str) -> WRCSpec | None:
    """A row's ``wrc`` argument as the WRCSpec (None: plain shortcuts) that every bottleneck of the row gets."""
    try:
        return WRCSpec.parse(wrc)
    except ValueError as e:
        raise RowError(f"{where}: {e}") from None


def _with_spec(module: type, call: list, where: str) -> list:
    """The constructor arguments ``call`` of ``module`` with the one named ``wrc``, if given, parsed (``_spec``)."""
    names = [p.name for p in parameters(module.__init__)[1:]]
    k = names.index("wrc") if "wrc" in names else len(call)
    return [*call[:k], _spec(call[k], where), *call[k + 1 :]] if k < len(call) else call


REGISTRY: dict[str, Registration] = {}


def register_module(module: type | None = None, *, like: str = "Conv", name: str | None = None):
    """Make ``module`` usable by name in ultralytics model YAMLs; works as a decorator too.

    Args:
        module (type): An ``nn.Module`` subclass whose constructor starts with ``(c1, c2, ...)``, or
            ``(c1, c2, n, ...)`` when ``like`` is a repeat module.
        like (str): Upstream module whose YAML parsing applies: 'Conv' (``c2`` scaled by width, n copies stacked),
            'C3' or 'C2f' (also ``n`` scaled by depth and passed as the third argument) or 'C3k2' (as C3, and the
            fourth argument ``c3k`` forced on at scales m/l/x). A subclass of that module with an ``adopt``
            classmethod is built by ultralytics and adopted (see the module docstring).
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
    torch.serialization.add_safe_globals([module])  # restricted loading (ULTRALYTICS_SAFE_LOAD=true)
    remember_class(module)  # its checkpoints find its module again (cspdet.imports)
    return module


def register_blocks():
    """Make cspdet's blocks (``cspdet.catalog``) usable in model YAMLs and, with their parts and the rebuild of users'
    classes, in restricted (weights-only) checkpoint loading."""
    for name, block in BLOCKS.items():
        cls = getattr(importlib.import_module(block.module), name)
        if block.like:
            register_module(cls, like=block.like)
        else:
            torch.serialization.add_safe_globals([cls])
    torch.serialization.add_safe_globals([rebuild])


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


def _registered(name, where: str) -> Registration:
    """The registration of the row module ``name``; one that is not known yet comes from an installed package."""
    if name not in REGISTRY and isinstance(name, str):
        try:
            declared = load_entry_point(name)
        except CspdetError as e:
            raise RowError(f"{where}: {e}") from None
        if declared and name not in REGISTRY:
            raise RowError(f"{where}: entry point {declared} did not register '{name}' (cspdet.register_module)")
    if name not in REGISTRY:
        raise RowError(
            f"{where}: unknown module '{name}'. cspdet modules: {', '.join(sorted(REGISTRY))}; register your own "
            "with cspdet.register_module in a module that the YAML's 'imports:' lists, or in an installed package "
            f"that declares it (entry point group '{ENTRY_POINTS}')"
        )
    return REGISTRY[name]


def parse_model(original: Callable, d: dict, ch, verbose: bool = True):
    """Run ultralytics' ``original`` parse_model on ``d`` with registered modules resolved through proxies.

    ``Conv.default_act`` is put back afterwards, as 8.4 does and 8.3 does not after a YAML ``activation:``.
    """
    activation = Conv.default_act
    try:
        return _parse_model(original, d, ch, verbose)
    finally:
        Conv.default_act = activation


def _parse_model(original: Callable, d: dict, ch, verbose: bool):
    rows = d["backbone"] + d["head"]
    ours = {}
    for i, row in enumerate(rows):
        if not (isinstance(row[2], str) and _upstream_name(row[2])):
            ours[i] = _registered(row[2], _where(d, i, row))
    if not ours:
        return original(d, ch, verbose)

    def proxy_row(i, row):
        f, n, name, args = row
        if i not in ours:
            return row
        if len(args) < 1:
            raise RowError(f"{_where(d, i, row)}: the first argument must be the output channels")
        if ours[i].adopts:
            proxy_args, adopt = ours[i].split([_value(d, a) for a in args], _where(d, i, row))
            if "wrc" in adopt:
                adopt["wrc"] = _spec(adopt["wrc"], _where(d, i, row))
            adopt_args[i] = adopt
            return [f, n, ours[i].like, proxy_args]
        return [f, n, ours[i].like, list(args[: RULES[ours[i].like].proxy_args])]

    adopt_args = {}
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
        model[i], table[i] = _build(d, i, rows[i], registration, model[i], adopt_args.get(i))
    for record in capture.records:
        for i, line in table.items():
            if record.getMessage().startswith(f"{i:>3}{rows[i][0]!s:>20}"):
                record.msg, record.args = line, ()
        LOGGER.handle(record)
    return model, save


def _value(d: dict, a):
    """A string argument naming a top-level YAML key takes its value, as ultralytics does for 'nc'."""
    return d[a] if isinstance(a, str) and a in d and a not in {"backbone", "head"} else a


def _build(d: dict, i: int, row: list, registration: Registration, proxy: nn.Module, adopt: dict | None):
    """Build (or adopt) the registered module that replaces ``proxy``; return it and its layer-table line."""
    f, _, name, args = row
    rule = RULES[registration.like]
    copies = list(proxy) if isinstance(proxy, nn.Sequential) else [proxy]  # 'Conv'-like rows with n > 1
    resolved = rule.resolved(copies[0])
    call = [*resolved, *(_value(d, a) for a in args[rule.proxy_args :])]
    if adopt is not None:
        try:
            module = registration.module.adopt(proxy, **adopt)
        except Exception as e:
            raise RowError(f"{_where(d, i, row)}: {registration.module.__name__}{tuple(call)} failed: {e}") from e
        return _finish(module, i, f, registration, len(copies) if registration.like == "Conv" else resolved[2], call)
    if len(copies) > 1 and resolved[0] != resolved[1]:
        raise RowError(
            f"{_where(d, i, row)}: {len(copies)} stacked copies need equal input and output channels, got "
            f"{resolved[0]} -> {resolved[1]}; change channels with a Conv row first"
        )
    act = next(m.act for m in proxy.modules() if isinstance(m, Conv))
    arguments = _with_spec(registration.module, call, _where(d, i, row))
    try:
        with _default_activation(act):
            built = [registration.module(*arguments) for _ in copies]
    except Exception as e:
        raise RowError(f"{_where(d, i, row)}: {registration.module.__name__}{tuple(call)} failed: {e}") from e
    module = nn.Sequential(*built) if len(built) > 1 else built[0]
    return _finish(module, i, f, registration, len(copies) if registration.like == "Conv" else resolved[2], call)


def _finish(module: nn.Module, i: int, f, registration: Registration, n: int, call: list):
    """Set the attributes parse_model gives its layers; return the module and its layer-table line."""
    module.i, module.f = i, f
    module.type = f"{registration.module.__module__}.{registration.module.__qualname__}"
    module.np = sum(p.numel() for p in module.parameters())
    line = f"{i:>3}{f!s:>20}{n:>3}{module.np:10.0f}  {module.type:<45}{call!s:<30}"  # upstream's table format
    return module, line


def fuse(original, model, *args, **kwargs):
    """BaseModel.fuse, then fold cspdet's shortcut weights into the fused convs (no inference cost, same outputs)."""
    from cspdet.nn.fold import fold_shortcuts

    result = original(model, *args, **kwargs)
    fold_shortcuts(model)
    return result


def probe():
    """Check that parse_model resolves the proxies' arguments as RULES expects, and that the stages take theirs."""
    if [p.name for p in parameters(tasks.parse_model)[:3]] != ["d", "ch", "verbose"]:
        raise TypeError(f"parse_model takes {[p.name for p in parameters(tasks.parse_model)]}, not (d, ch, verbose)")
    if not callable(getattr(tasks.BaseModel, "fuse", None)):
        raise AttributeError("BaseModel.fuse is gone")
    for like, names in {"C3": "shortcut g e", "C2f": "shortcut g e", "C3k2": "c3k e g shortcut"}.items():
        missing = set(names.split()) - {p.name for p in parameters(getattr(tasks, like).__init__)}
        if missing:
            raise TypeError(f"{like} no longer takes {sorted(missing)}")
    rows = [[-1, 1, like, [16] + [False] * (rule.proxy_args - 1)] for like, rule in RULES.items()]
    rows[0][1] = 2
    d = {"nc": 1, "scales": {"n": [1.0, 1.0, 1024]}, "scale": "n", "backbone": rows, "head": []}
    layers, _ = tasks.parse_model(d, 8, False)
    first = [layer[0] if isinstance(layer, nn.Sequential) else layer for layer in layers]
    resolved = [rule.resolved(layer) for rule, layer in zip(RULES.values(), first)]
    if resolved != [[8, 16], [16, 16, 1], [16, 16, 1], [16, 16, 1, False]]:
        raise ValueError(f"parse_model resolved {resolved} for the probe rows {rows}")


def install():
    """Parse registered modules in model YAMLs, fold WRC weights in fuse(), register cspdet's blocks."""
    register_blocks()
    wrap_everywhere(tasks, "parse_model", parse_model)
    wrap(tasks.BaseModel, "fuse", fuse)
