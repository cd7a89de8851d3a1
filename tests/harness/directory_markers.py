"""A pytest plugin: a test's marker is the name of the directory it lives in.

``make test-unit`` runs ``-m unit``, ``make test-cluster`` runs ``-m cluster``, and so on; a
test missing its marker would be skipped by the run meant for it without anyone noticing. So the
directory decides: every test under ``tests/<kind>/`` gets the marker ``<kind>``, and a test that
carries the marker of another kind stops the collection with the file to move.
"""

from __future__ import annotations

from pathlib import Path

import pytest

KINDS = ("unit", "integration", "browser", "cluster", "docker", "chaos")


def kind_of(path: Path, tests_root: Path) -> str | None:
    """The kind a test file's directory names (``tests/unit/test_x.py`` -> ``unit``)."""
    try:
        first = path.resolve().relative_to(tests_root.resolve()).parts[0]
    except (ValueError, IndexError):
        return None
    return first if first in KINDS else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_root = config.rootpath / "tests"
    misplaced: list[str] = []
    for item in items:
        kind = kind_of(item.path, tests_root)
        if kind is None:
            misplaced.append(f"{item.nodeid}: not under tests/<{'|'.join(KINDS)}>/")
            continue
        others = {mark.name for mark in item.iter_markers() if mark.name in KINDS} - {kind}
        if others:
            misplaced.append(
                f"{item.nodeid}: marked {', '.join(sorted(others))} but lives in tests/{kind}/"
            )
        item.add_marker(getattr(pytest.mark, kind))
    if misplaced:
        raise pytest.UsageError(
            "coinstream: a test's marker follows its directory; move these or drop the marker:\n"
            + "\n".join(misplaced)
        )
