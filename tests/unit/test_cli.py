"""The ``coinstream`` command's parts that need no running service: where the token comes from,
the Looker Studio link, and errors that are one line."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from rich.console import Console
from typer.testing import CliRunner

from coinstream.cli import app
from coinstream.commands.status import PipelineStatus, status_table
from coinstream.control_client import control_url, read_token, token_file
from deploy.local.control_access import control_token_path
from shared.settings import Settings

runner = CliRunner()


def test_the_token_file_is_the_one_make_run_writes(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert token_file(settings) == control_token_path(settings)


def test_the_token_comes_from_the_setting_first_then_the_file(tmp_path: Path) -> None:
    assert read_token(Settings(state_dir=tmp_path)) is None
    (tmp_path / "control-token").write_text("from-the-file\n")
    assert read_token(Settings(state_dir=tmp_path)) == "from-the-file"
    assert read_token(Settings(state_dir=tmp_path, control_api_token="set")) == "set"


def test_the_control_url_defaults_to_the_local_port() -> None:
    assert control_url(Settings(control_port=8123)) == "http://127.0.0.1:8123"
    assert control_url(Settings(control_url="http://control:8100/")) == "http://control:8100"


def test_looker_url_prints_the_link_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSTREAM_GCP_PROJECT", "analytics-prod")
    result = runner.invoke(app, ["looker-url", "--dataset", "crypto"])
    assert result.exit_code == 0, result.output
    query = parse_qs(urlsplit(result.stdout.strip()).query)
    assert query["ds.ds0.projectId"] == ["analytics-prod"]
    assert query["ds.ds0.datasetId"] == ["crypto"]
    as_json = runner.invoke(app, ["looker-url", "--project", "p1", "--json"])
    assert as_json.stdout.startswith('{\n  "url": "https://lookerstudio.google.com/')


def test_looker_url_options_override_project_and_dataset_in_every_data_source() -> None:
    result = runner.invoke(app, ["looker-url", "--project", "p1", "--dataset", "d1"])
    assert result.exit_code == 0, result.output
    query = parse_qs(urlsplit(result.stdout.strip()).query)
    assert query["ds.ds3.projectId"] == ["p1"]
    assert query["ds.ds3.datasetId"] == ["d1"]


def test_looker_url_on_the_emulator_is_one_line_saying_what_to_set() -> None:
    result = runner.invoke(app, ["looker-url"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("coinstream: Looker Studio reads real BigQuery only")
    assert result.stderr.count("\n") == 1


def test_an_unknown_component_is_refused_before_asking_anyone() -> None:
    result = runner.invoke(app, ["restart", "kafka"])
    assert result.exit_code == 1
    assert result.stderr == (
        "coinstream: unknown component 'kafka'; use one of: asset-ingestor, exchange-ingestor, "
        "stream-worker\n"
    )


def component(name: str, desired: str, observed: str) -> dict[str, object]:
    return {
        "name": name,
        "desired_state": desired,
        "observed_state": observed,
        "in_sync": desired == observed,
        "last_success_at": None,
        "last_error": None,
    }


def test_the_status_table_colours_what_needs_a_look() -> None:
    settings = Settings(topic_assets="assets.v1", topic_exchanges="exchanges.v1")
    status = PipelineStatus(
        control_url="http://127.0.0.1:8100",
        readiness={"status": "unready", "detail": "Kafka at 127.0.0.1:9092 does not answer"},
        components=[
            component("asset-ingestor", "RUNNING", "RUNNING"),
            component("exchange-ingestor", "PAUSED", "PAUSED"),
            component("stream-worker", "RUNNING", "UNREACHABLE"),
        ],
        lag={
            "topics": [
                {"topic": "assets.v1", "exists": True, "lag_records": 0, "lag_seconds": 0.0},
                {"topic": "exchanges.v1", "exists": True, "lag_records": 40, "lag_seconds": 900.0},
            ]
        },
        lag_problem=None,
        freshness=None,
        freshness_problem="the control service refused GET /freshness: warehouse down",
    )
    console = Console(
        file=io.StringIO(), record=True, force_terminal=True, width=160, color_system="standard"
    )
    console.print(status_table(settings, status))
    coloured = console.export_text(styles=True, clear=False)
    plain = console.export_text()
    assert "coinstream at http://127.0.0.1:8100: unready" in plain
    assert "Kafka at 127.0.0.1:9092 does not answer" in plain  # why, under the table
    assert "warehouse down" in plain
    assert "\x1b[32mRUNNING" in coloured  # green: running as desired
    assert "\x1b[33mPAUSED" in coloured  # yellow: paused on purpose
    assert "\x1b[1;31mUNREACHABLE" in coloured  # red: should run, does not answer
    assert "\x1b[31m40 (15 min behind)" in coloured  # red: the oldest waited over 5 minutes
    stream_worker = next(line for line in plain.splitlines() if "stream-worker" in line)
    assert "40 (15 min behind)" in stream_worker  # the worker's row sums every topic
    assert "unknown" in stream_worker  # freshness could not be read
