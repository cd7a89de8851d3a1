"""The control service refuses to start, with one line, when it would be open to anyone (no
token, open off loopback, or a token short enough to guess)."""

from __future__ import annotations

import pytest

from tests.harness.processes import refusal_at_start

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
    assert expected in refusal_at_start(["services.control"], environment)
