"""A pytest plugin: no two collected tests share a node id.

``make test`` hands tests to its processes (pytest-xdist) by node id, so of two tests with one id
only the first would run, and the run would still pass. A plugin that builds its own items
(schemathesis makes one per API operation) can produce such twins after a pytest upgrade; this
stops the collection naming them instead.
"""

from __future__ import annotations

from collections import Counter

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    twins = sorted(nodeid for nodeid, n in Counter(i.nodeid for i in items).items() if n > 1)
    if twins:
        raise pytest.UsageError(
            "coinstream: these node ids name more than one test, so a parallel run would run "
            "only one of each:\n" + "\n".join(twins)
        )
