"""pytest plugin of the compat matrix (``-p tools.compat.plugin``): each compat test's check, outcome and time, written
as JSON to the file named by ``CSPDET_COMPAT_REPORT``, with the upstream features of the installed ultralytics."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPORT_ENV = "CSPDET_COMPAT_REPORT"

_checks: dict[str, str] = {}
_tests: dict[str, dict] = {}
_collection_errors: list[str] = []


def pytest_collection_modifyitems(items):
    for item in items:
        marker = item.get_closest_marker("compat")
        if marker:
            _checks[item.nodeid] = marker.args[0] if marker.args else "other"


def pytest_collectreport(report):
    if report.failed:
        _collection_errors.append(report.nodeid)


def pytest_runtest_logreport(report):
    if report.nodeid not in _checks:
        return
    test = _tests.setdefault(report.nodeid, {"check": _checks[report.nodeid], "outcome": "passed", "seconds": 0.0})
    test["seconds"] += report.duration
    if report.failed:
        test["outcome"] = "failed"
    elif report.skipped and test["outcome"] == "passed":
        test["outcome"] = "skipped"


def pytest_sessionfinish(session):
    path = os.environ.get(REPORT_ENV)
    if path:
        from cspdet.integration.compat import upstream_features

        found = {"tests": _tests, "collection_errors": _collection_errors, "features": upstream_features()}
        Path(path).write_text(json.dumps(found, indent=1))
