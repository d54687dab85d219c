"""The ``cspdet`` command (also ``python -m cspdet``): one subcommand per module of this package.

Each command module has a docstring (its help), ``add_arguments(parser)`` and ``run(args) -> int``, and imports
nothing heavy at module level, so that ``--help`` answers without importing torch. Exit status: 0 on success, 1 for a
failure (one line naming the file and the field), 2 for a usage error, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cspdet.errors import CspdetError
from cspdet.version import __version__

COMMANDS = {  # name -> module of cspdet.cli
    "eval": "eval",
    "info": "info",
    "plot-wrc": "plot_wrc",
    "shapes": "shapes",
    "ablate": "ablate",
    "bench": "bench",
    "gpu-check": "gpu_check",
    "train": "train",
    "video": "video",
}
FAILURES = (CspdetError, ValueError, OSError)  # bad input: reported in one line, no traceback


def add_commands(
    subparsers, modules: dict[str, str], dest: str, function: str = "run"
) -> list[argparse.ArgumentParser]:
    """Add a parser per ``cspdet.cli`` module of ``modules`` (name -> module): its docstring as help, its arguments,
    and its ``function`` as ``dest``; return the parsers."""
    parsers = []
    for name, module_name in modules.items():
        module = importlib.import_module(f"cspdet.cli.{module_name}")
        doc = module.__doc__.strip()
        parser = subparsers.add_parser(
            name, help=doc.split("\n")[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(parser)
        parser.set_defaults(**{dest: getattr(module, function)})
        parsers.append(parser)
    return parsers


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="cspdet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"cspdet {__version__}")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), COMMANDS, "_run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except KeyboardInterrupt:
        print(f"cspdet {args.command}: interrupted", file=sys.stderr)
        return 130
    except FAILURES as e:
        print(f"cspdet {args.command}: error: {e}", file=sys.stderr)
        return 1
