"""The tests' own layout: shared code lives in ``tests/harness/``, and only there.

A test module that imports another test module runs that module's fixtures and module-level
set-up in a second copy (pytest imports test files under their own names, the importer under
``tests.…``), and a conftest imported as a library is a second, fixture-less copy of it; both
hide what a test depends on. The harness serves the benchmarks too, so what they import from it
must not need pytest, and the shipped code (``deploy/`` and the services) never imports tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

from shared.settings import PROJECT_ROOT

HARNESS = "tests.harness"
SHIPPED = ("deploy", "services", "shared", "coinstream")


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (PROJECT_ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)


def imported_modules(path: Path) -> list[str]:
    return imported_names(path.read_text(), module_name(path))


def imported_names(source: str, module: str) -> list[str]:
    """Every module that ``source`` (the module ``module``) imports, by absolute name;
    ``from a import b`` gives ``a`` and ``a.b``, since ``b`` may be a module."""
    package = module.rsplit(".", 1)[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def imports_a_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def test_no_test_or_benchmark_imports_a_test_module_or_a_conftest() -> None:
    offending = [
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in python_files("tests", "bench")
        for name in imported_modules(path)
        if imports_a_test_module(name)
    ]
    assert offending == [], "move what they share into tests/harness/:\n" + "\n".join(offending)


def test_the_shipped_code_never_imports_the_tests() -> None:
    offending = [
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in python_files(*SHIPPED)
        for name in imported_modules(path)
        if name == "tests" or name.startswith("tests.")
    ]
    assert offending == [], "\n".join(offending)


def harness_modules_needing_pytest() -> set[str]:
    """The harness modules that import pytest, directly or through another harness module."""
    harness = {module_name(path): path for path in python_files("tests/harness")}
    imports = {name: set(imported_modules(path)) for name, path in harness.items()}
    needing = {name for name, names in imports.items() if "pytest" in names}
    while True:
        grown = needing | {name for name, names in imports.items() if names & needing}
        if grown == needing:
            return needing
        needing = grown


def test_what_the_benchmarks_import_from_the_harness_runs_without_pytest() -> None:
    needing = harness_modules_needing_pytest()
    offending = [
        f"{path.relative_to(PROJECT_ROOT)} imports {name}, which needs pytest"
        for path in python_files("bench")
        for name in imported_modules(path)
        if name in needing
    ]
    assert offending == [], "\n".join(offending)


def test_the_walk_finds_every_way_to_import_a_test_module() -> None:
    source = (
        "import tests.unit.test_x\n"
        "from tests.integration import test_y\n"
        "from tests.cluster.conftest import SETTING\n"
        "from . import conftest\n"
        "from ..unit.test_z import helper\n"
        "from tests.harness.processes import LocalStack\n"
    )
    names = imported_names(source, "tests.chaos.sample")
    assert [name for name in names if imports_a_test_module(name)] == [
        "tests.unit.test_x",
        "tests.integration.test_y",
        "tests.cluster.conftest",
        "tests.chaos.conftest",
        "tests.unit.test_z",
    ]
