"""``python -m services.coincap_simulator`` as ``make run`` starts it: its flags take effect, it
says the data is simulated, and it logs JSON lines without one line per request."""

from __future__ import annotations

import json
import sys

import httpx

from deploy.local.readiness import http_answers, wait_until
from tests.harness.environment import TEST_STATE_DIR, offset_port
from tests.harness.processes import ManagedProcess

PORT = offset_port(18095)


def test_the_command_line_serves_its_flags_and_logs_for_people() -> None:
    process = ManagedProcess(
        "coincap-simulator-cli",
        [
            sys.executable,
            "-m",
            "services.coincap_simulator",
            "--port",
            str(PORT),
            "--seed",
            "3",
            "--tick-seconds",
            "0.5",
            "--api-key",
            "test-key",
            "--fault",
            '{"mode": "rate_limit", "count": 2, "retry_after": 1}',
        ],
        {},
        TEST_STATE_DIR / "logs",
    )
    process.start()
    base = f"http://127.0.0.1:{PORT}"
    try:
        wait_until(
            lambda: process.is_running() and http_answers(f"{base}/healthz"), "simulator", 30
        )
        headers = {"Authorization": "Bearer test-key"}
        statuses = [
            httpx.get(f"{base}/v3/assets", params={"limit": 2}, headers=headers).status_code
            for _ in range(3)
        ]
        unauthorised = httpx.get(f"{base}/v3/assets", params={"limit": 2}).status_code
    finally:
        process.stop()

    assert statuses == [429, 429, 200]  # the --fault knob, then the market
    assert unauthorised == 401  # --api-key is required
    lines = [json.loads(line) for line in process.log_text().splitlines() if line.strip()]
    assert any("SIMULATED" in line["message"] and "seed 3" in line["message"] for line in lines), (
        lines
    )
    assert all(line.get("service") == "coincap-simulator" for line in lines)
    assert not [line for line in lines if line.get("logger") == "uvicorn.access"], (
        "every request was logged"
    )
