"""The local BigQuery emulator (``bqemulator``, on DuckDB), with its data under the state folder.

``bigquery_emulator_command`` checks the ports and the state file, places the DuckDB extensions
the emulator loads, and returns the command line and environment that
``python -m deploy.local.stack bigquery`` replaces itself with.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from deploy.local.duckdb_extensions import place_duckdb_extensions
from deploy.local.errors import StackError
from deploy.local.prerequisites import require_free_port
from shared.settings import Settings


def bigquery_data_dir(settings: Settings) -> Path:
    return settings.state_dir / "bigquery"


def bigquery_home_dir(settings: Settings) -> Path:
    """A HOME of the emulator's own, so that its DuckDB extensions stay inside the project."""
    return settings.state_dir / "bigquery-home"


def check_bigquery_state(settings: Settings) -> None:
    """Open the emulator's DuckDB file once, so that a corrupt file gets a clear message."""
    import duckdb

    database = bigquery_data_dir(settings) / "bqemulator.duckdb"
    if not database.exists():
        return
    try:
        duckdb.connect(str(database)).close()
    except duckdb.Error as error:
        reason = str(error).splitlines()[0]
        raise StackError(
            f"the BigQuery emulator state {database} is corrupt ({reason}); run "
            "`make clean-state` to start again from empty state (this deletes local data)"
        ) from None


def bigquery_emulator_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """Check ports and state and return the emulator's argv and environment."""
    port = settings.bigquery_emulator_port
    require_free_port("127.0.0.1", port, "COINSTREAM_BIGQUERY_EMULATOR_URL")
    require_free_port(
        "127.0.0.1", settings.bigquery_emulator_grpc_port, "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT"
    )
    place_duckdb_extensions(bigquery_home_dir(settings))
    data_dir = bigquery_data_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    check_bigquery_state(settings)
    argv = [
        sys.executable,
        "-m",
        "deploy.local.bigquery_emulator_cli",
        "start",
        "--persistent",
        "--data-dir",
        str(data_dir),
        "--project",
        settings.bigquery_emulator_project,
        "--rest-host",
        settings.bind_host,
        "--grpc-host",
        settings.bind_host,
        "--rest-port",
        str(port),
        "--grpc-port",
        str(settings.bigquery_emulator_grpc_port),
        "--log-format",
        "json",
        "--log-level",
        "warning",
    ]
    environment = {**os.environ, "HOME": str(bigquery_home_dir(settings))}
    return argv, environment
