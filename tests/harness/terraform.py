"""``terraform/*.tf`` parsed (python-hcl2), block by kind, for the tests that hold the
configuration to the code's one schema definition and to the rules of the deployment."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from shared.settings import PROJECT_ROOT

TERRAFORM_DIR = PROJECT_ROOT / "terraform"
TERRAFORM_FILES = sorted(TERRAFORM_DIR.glob("*.tf"))


@cache
def parsed(path: Path) -> dict[str, Any]:
    options = hcl2.SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    with path.open() as file:
        document: dict[str, Any] = hcl2.load(file, serialization_options=options)
    return document


def blocks(kind: str) -> list[dict[str, Any]]:
    """Every block of ``kind`` (``resource``, ``variable``, ...) in every file."""
    return [block for path in TERRAFORM_FILES for block in parsed(path).get(kind, [])]


def resources(resource_type: str) -> dict[str, dict[str, Any]]:
    """The resources of one type, by name."""
    found: dict[str, dict[str, Any]] = {}
    for block in blocks("resource"):
        found.update(block.get(resource_type, {}))
    return found


def locals_() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in blocks("locals"):
        merged.update(block)
    return merged


def variables() -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for block in blocks("variable"):
        merged.update(block)
    return merged
