"""Settings: defaults, the COINSTREAM_ prefix, secrets that never print, clear errors."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from shared.settings import Settings, describe_settings_error

pytestmark = pytest.mark.unit


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
