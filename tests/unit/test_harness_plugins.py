"""The suite's own plugins: markers that follow the directory, node ids that name one test each,
and the count of slow starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.directory_markers import kind_of
from tests.harness.start_counts import StartCounter, cpu_ticks, descends_from, parent_of

PLUGINS = 'pytest_plugins = ["tests.harness.directory_markers"]'
ISOLATED = ("-p", "no:cacheprovider", "-p", "no:bqemulator", "-p", "no:asyncio")
"""The inner runs need no cache, no event loop, nor the emulator's plugin (it wants Docker)."""


def test_a_test_files_kind_is_its_directory(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    assert kind_of(tests / "unit" / "test_x.py", tests) == "unit"
    assert kind_of(tests / "cluster" / "deeper" / "test_y.py", tests) == "cluster"
    assert kind_of(tests / "harness" / "processes.py", tests) is None
    assert kind_of(tmp_path / "bench" / "test_z.py", tests) is None


def test_each_test_gets_its_directorys_marker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PLUGINS)
    pytester.makepyfile(**{"tests/unit/test_a.py": "def test_a():\n    pass\n"})
    pytester.makepyfile(**{"tests/integration/test_b.py": "def test_b():\n    pass\n"})
    unit_run = pytester.runpytest("-m", "unit", "-v", *ISOLATED)
    unit_run.assert_outcomes(passed=1, deselected=1)
    unit_run.stdout.fnmatch_lines(["*tests/unit/test_a.py::test_a PASSED*"])
    integration_run = pytester.runpytest("-m", "integration", "-v", *ISOLATED)
    integration_run.assert_outcomes(passed=1, deselected=1)
    integration_run.stdout.fnmatch_lines(["*tests/integration/test_b.py::test_b PASSED*"])


def test_a_marker_of_another_directory_stops_the_collection(pytester: pytest.Pytester) -> None:
    """A unit test marked ``integration`` would be skipped by ``make test-unit``: refused."""
    pytester.makeconftest(PLUGINS)
    pytester.makepyfile(
        **{
            "tests/unit/test_misplaced.py": (
                "import pytest\n\n@pytest.mark.integration\ndef test_misplaced():\n    pass\n"
            )
        }
    )
    result = pytester.runpytest(*ISOLATED)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*marked integration but lives in tests/unit/*"])


def test_two_tests_with_one_node_id_stop_the_collection(pytester: pytest.Pytester) -> None:
    """A parallel run hands tests out by node id: of twins only one would run, silently."""
    pytester.makeconftest(
        'pytest_plugins = ["tests.harness.unique_ids"]\n\n'
        "def pytest_collection_modifyitems(items):\n"
        "    items.append(items[0])  # what a plugin building its own items can end up doing\n"
    )
    pytester.makepyfile(**{"tests/unit/test_twins.py": "def test_a():\n    pass\n"})
    result = pytester.runpytest(*ISOLATED)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*name more than one test*", "tests/unit/test_twins.py::test_a"])
    pytester.makeconftest('pytest_plugins = ["tests.harness.unique_ids"]\n')
    pytester.runpytest(*ISOLATED).assert_outcomes(passed=1)


def test_only_this_runs_descendants_are_counted() -> None:
    assert parent_of(os.getpid()) == os.getppid()
    assert descends_from(os.getpid(), os.getpid())
    assert descends_from(os.getpid(), os.getppid())
    assert not descends_from(os.getppid(), os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert descends_from(child.pid, os.getpid())
        counter = StartCounter(root=child.pid)
        counter.sample()  # no Spark driver, no make run below the sleeping child
        assert counter.spark_drivers == set() and counter.make_run_stacks == set()
    finally:
        child.kill()
        child.wait()


def test_the_summary_names_both_counts_and_how_busy_the_cores_were() -> None:
    busy, total = cpu_ticks()
    assert 0 < busy <= total
    lines = StartCounter(spark_drivers={1, 2}, make_run_stacks={3}).summary()
    assert lines[0] == "coinstream: this run started 2 Spark driver(s) and 1 `make run` stack(s)"
    assert "% busy meanwhile" in lines[1]
