"""The base of cspdet's errors: bad input that cspdet explains in one line (the file, the field or the YAML row)."""

import sys


class CspdetError(Exception):
    """An input or environment that cspdet cannot use; the message says which and why."""


def one_line_excepthook(previous):
    """A ``sys.excepthook`` that shows an uncaught CspdetError as its one line, and hands on every other exception.

    Installed with cspdet into every process that imports ultralytics (the stock ``yolo`` command among them).
    """

    def excepthook(kind, error, traceback):
        if isinstance(error, CspdetError):
            print(f"{kind.__name__}: {error}", file=sys.stderr)
        else:
            previous(kind, error, traceback)

    excepthook.cspdet = True
    return excepthook
