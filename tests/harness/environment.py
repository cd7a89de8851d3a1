"""Where the tests' processes listen and keep their state: test ports, moved by
``COINSTREAM_TEST_PORT_OFFSET``, and a state folder of their own (``.state/test``).

A developer's ``make run`` on the default ports can stay up while the tests run, and two test
runs on one machine (two worktrees, say) keep apart by setting the offset to, e.g., 100: every
test port moves by it, and the state folder is named after it.
"""

from __future__ import annotations

import os

from shared.settings import PROJECT_ROOT

PORT_OFFSET = int(os.environ.get("COINSTREAM_TEST_PORT_OFFSET", "0"))
TEST_STATE_DIR = PROJECT_ROOT / ".state" / (f"test-{PORT_OFFSET}" if PORT_OFFSET else "test")


def offset_port(port: int) -> int:
    """``port`` moved by this run's offset."""
    return port + PORT_OFFSET


TEST_ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(19092)}",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": str(offset_port(19093)),
    "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(19050)}",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": str(offset_port(19060)),
    "COINSTREAM_BIGQUERY_DATASET": "coinstream_test",
    "COINSTREAM_STATE_DIR": str(TEST_STATE_DIR / "stack"),
}
"""The settings that reach the session's broker and emulator (``LocalStack``)."""

SIMULATOR_PORT = offset_port(18090)
"""The session's CoinCap simulator (``simulator_process``)."""
