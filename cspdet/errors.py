"""The base of cspdet's errors: bad input that cspdet explains in one line (the file, the field or the YAML row)."""


class CspdetError(Exception):
    """An input or environment that cspdet cannot use; the message says which and why."""
