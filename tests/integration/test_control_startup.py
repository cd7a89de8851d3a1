"""The control service refuses to start, with one line, when it would be open to anyone (no
token, open off loopback, or a token short enough to guess)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.local.processes import subprocess_environment
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "COINSTREAM_CONTROL_API_TOKEN"),
        (
            {"COINSTREAM_CONTROL_ALLOW_OPEN": "true", "COINSTREAM_BIND_HOST": "0.0.0.0"},
            "honoured only on a loopback address",
        ),
        ({"COINSTREAM_CONTROL_API_TOKEN": "fifteen-chars!!"}, "fewer than 16"),
    ],
)
def test_the_service_refuses_to_start_with_one_line(
    environment: dict[str, str], expected: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.control"],
        cwd=PROJECT_ROOT,
        env=subprocess_environment(environment),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coinstream: ")
    assert expected in lines[0]
