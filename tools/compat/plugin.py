"""pytest plugin of the compat matrix (``-p tools.compat.plugin``): each compat test's check, outcome and time, written
as JSON to the file named by ``CSPDET_COMPAT_REPORT``, with the upstream features of the installed ultralytics.

Works under pytest-xdist: the check travels with each test report (``user_properties``) from the worker that
collected it to the controller, which alone writes the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPORT_ENV = "CSPDET_COMPAT_REPORT"
CHECK_PROPERTY = "compat check"

_tests: dict[str, dict] = {}
_collection_errors: list[str] = []


def pytest_collection_modifyitems(items):
    for item in items:
        marker = item.get_closest_marker("compat")
        if marker:
            item.user_properties.append((CHECK_PROPERTY, marker.args[0] if marker.args else "other"))


def pytest_collectreport(report):
    if report.failed:
        _collection_errors.append(report.nodeid)


def pytest_runtest_logreport(report):
    check = dict(report.user_properties).get(CHECK_PROPERTY)
    if check is None:
        return
    test = _tests.setdefault(report.nodeid, {"check": check, "outcome": "passed", "seconds": 0.0})
    test["seconds"] += report.duration
    if report.failed:
        test["outcome"] = "failed"
    elif report.skipped and test["outcome"] == "passed":
        test["outcome"] = "skipped"


def pytest_sessionfinish(session):
    path = os.environ.get(REPORT_ENV)
    if path and not hasattr(session.config, "workerinput"):  # an xdist worker's reports reach the controller
        from cspdet.integration.compat import upstream_features

        found = {"tests": _tests, "collection_errors": _collection_errors, "features": upstream_features()}
        Path(path).write_text(json.dumps(found, indent=1))
