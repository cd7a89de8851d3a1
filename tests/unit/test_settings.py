"""Settings: defaults, the COINSTREAM_ prefix, secrets that never print, clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from shared.redaction import redact_secrets
from shared.settings import (
    ControlServiceSettings,
    DashboardServiceSettings,
    IngestorSettings,
    KafkaSettings,
    Settings,
    WorkerSettings,
    describe_settings_error,
)
from shared.settings import docs as settings_docs
from shared.settings.docs import GROUPS, SETTINGS_PAGE, own_fields, settings_page

SERVICES: dict[str, type[BaseSettings]] = {
    "ingestor": IngestorSettings,
    "worker": WorkerSettings,
    "control": ControlServiceSettings,
    "dashboard": DashboardServiceSettings,
    "everything": Settings,
}
"""Each service's settings class, and the one `coinstream` and the local stack load."""


@pytest.fixture(autouse=True)
def no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own COINSTREAM_ variables must not leak into these tests."""
    for name in [name for name in os.environ if name.startswith("COINSTREAM_")]:
        monkeypatch.delenv(name)


def test_defaults_run_offline() -> None:
    settings = Settings(_env_file=None)
    assert settings.uses_bigquery_emulator
    assert settings.warehouse_project == "coinstream-local"
    assert settings.uses_coincap_simulator
    assert settings.coincap_url == "http://127.0.0.1:8090/v3"
    assert settings.kafka_listener == ("127.0.0.1", 9092)
    assert settings.bigquery_emulator_port == 9050


def test_environment_variables_use_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSTREAM_GCP_PROJECT", "my-project")
    monkeypatch.setenv("COINSTREAM_COINCAP_API_KEY", "abc123secret")
    monkeypatch.setenv("COINSTREAM_KAFKA_BOOTSTRAP_SERVERS", "broker-1:29092,broker-2:29092")
    settings = Settings(_env_file=None)
    assert not settings.uses_bigquery_emulator
    assert settings.warehouse_project == "my-project"
    assert settings.coincap_url == "https://rest.coincap.io/v3"
    assert settings.kafka_listener == ("broker-1", 29092)


def test_the_api_key_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSTREAM_COINCAP_API_KEY", "abc123secret")
    settings = Settings(_env_file=None)
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "abc123secret" not in text
    assert settings.coincap_api_key is not None
    assert settings.coincap_api_key.get_secret_value() == "abc123secret"


def test_a_bad_value_is_described_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSTREAM_BIGQUERY_EMULATOR_URL", "localhost")
    monkeypatch.setenv("COINSTREAM_BIGQUERY_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)
    message = describe_settings_error(raised.value)
    assert "COINSTREAM_BIGQUERY_EMULATOR_URL must look like" in message
    assert "COINSTREAM_BIGQUERY_TIMEOUT_SECONDS: " in message
    assert "\n" not in message


# --- groups ---------------------------------------------------------------------------------


def test_each_setting_belongs_to_one_group_of_the_settings_page() -> None:
    """The page lists each group's own fields; a field in no group, or in two, would be missed
    or shown twice."""
    declared = [name for _, group in GROUPS for name in own_fields(group)]
    assert sorted(declared) == sorted(Settings.model_fields)
    assert len(declared) == len(set(declared))


def test_the_settings_page_is_generated_from_the_groups() -> None:
    assert SETTINGS_PAGE.read_text() == settings_page(), (
        "docs/settings.md differs from the settings groups: run `python -m shared.settings.docs`"
    )


def test_the_settings_page_check_fails_on_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "settings.md"
    stale.write_text(settings_page().replace("COINSTREAM_KAFKA_HEAP", "COINSTREAM_KAFKA_HEAT"))
    monkeypatch.setattr(settings_docs, "SETTINGS_PAGE", stale)
    assert settings_docs.main(["--check"]) == 1
    assert "python -m shared.settings.docs" in capsys.readouterr().out
    assert settings_docs.main([]) == 0
    assert settings_docs.main(["--check"]) == 0


@pytest.mark.parametrize(
    ("variable", "value", "refused_by"),
    [
        ("COINSTREAM_BIGQUERY_EMULATOR_URL", "localhost", {"worker", "control", "dashboard"}),
        ("COINSTREAM_SPARK_MASTER", "mesos://x:5050", {"worker"}),
        ("COINSTREAM_COINCAP_PAGE_LIMIT", "5000", {"ingestor", "worker", "control", "dashboard"}),
        ("COINSTREAM_TOPIC_MIN_INSYNC_REPLICAS", "2", {"ingestor", "worker", "control"}),
        ("COINSTREAM_INGEST_SPOOL_MAX_BYTES", "10", {"ingestor"}),
        ("COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS", "-1", {"control"}),
        ("COINSTREAM_RUN_RESTART_LIMIT", "0", set()),
        ("COINSTREAM_KAFKA_JVM_OPTIONS", "-Dname='unclosed", set()),
        ("COINSTREAM_KAFKA_JVM_OPTIONS", "-Xmx1g evil.Main", set()),
        (
            "COINSTREAM_STREAM_WORKER_URL",
            "worker:8103",
            {"ingestor", "worker", "control", "dashboard"},
        ),
    ],
)
def test_a_bad_value_stops_only_the_services_that_read_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, refused_by: set[str]
) -> None:
    monkeypatch.setenv(variable, value)
    refused = set()
    for name, settings_class in SERVICES.items():
        try:
            settings_class(_env_file=None)
        except ValidationError as error:
            assert variable in describe_settings_error(error)
            refused.add(name)
    assert refused == refused_by | {"everything"}


def test_the_snapshot_window_must_cover_retention_where_both_are_read() -> None:
    """Ingestors and the worker hold records to the window while Kafka keeps them for the
    retention; the control service and dashboard read only one of the two and do not check."""
    values: dict[str, Any] = {"snapshot_time_window_hours": 24, "topic_retention_hours": 48}
    for settings_class in (IngestorSettings, WorkerSettings, Settings):
        with pytest.raises(ValidationError) as refused:
            settings_class(_env_file=None, **values)
        line = describe_settings_error(refused.value)
        assert line.startswith("invalid settings: COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS (24) is")
    assert ControlServiceSettings(_env_file=None, **values).topic_retention_hours == 48


def test_a_small_ingest_buffer_stops_only_the_ingestors() -> None:
    values: dict[str, Any] = {"ingest_buffer_max_records": 500, "coincap_page_limit": 2000}
    with pytest.raises(ValidationError, match="COINSTREAM_INGEST_BUFFER_MAX_RECORDS"):
        IngestorSettings(_env_file=None, **values)
    assert WorkerSettings(_env_file=None, **values).coincap_page_limit == 2000


def test_a_service_holds_only_its_groups_fields() -> None:
    assert "control_api_token" not in IngestorSettings.model_fields
    assert "spark_master" not in ControlServiceSettings.model_fields
    assert "ingest_spool_dir" not in WorkerSettings.model_fields
    assert "kafka_heap" not in DashboardServiceSettings.model_fields
    assert set(WorkerSettings.model_fields) >= set(KafkaSettings.model_fields)


def test_each_service_redacts_every_secret_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "COINSTREAM_COINCAP_API_KEY": "coincap-key-0123",
        "COINSTREAM_CONTROL_API_TOKEN": "control-token-0123",
        "COINSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "COINSTREAM_KAFKA_SASL_USERNAME": "user",
        "COINSTREAM_KAFKA_SASL_PASSWORD": "sasl-password-0123",
    }
    for variable, value in secrets.items():
        monkeypatch.setenv(variable, value)
    text = "failed with coincap-key-0123, control-token-0123 and sasl-password-0123"
    held = {
        IngestorSettings: ["coincap-key-0123", "sasl-password-0123"],
        WorkerSettings: ["coincap-key-0123", "sasl-password-0123"],
        ControlServiceSettings: ["coincap-key-0123", "control-token-0123", "sasl-password-0123"],
    }
    for settings_class, values in held.items():
        shown = redact_secrets(text, settings_class(_env_file=None))
        assert shown is not None
        assert [value for value in values if value in shown] == [], settings_class.__name__
        assert shown.count("[redacted]") == len(values)
