"""The ingestor's guards without any process: restart generations, what /healthz may show,
and a buffer too small for one poll."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.ingestor.loop import Ingestor
from services.ingestor.models import IngestorHealth
from services.ingestor.specs import ingestor_spec
from shared.coincap.client import CoinCapClient
from shared.control_state import DesiredState
from shared.settings import Settings, describe_settings_error

API_KEY = "ck-live-0123456789abcdef"
TOKEN = "control-token-0123456789"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def ingestor(configured: Settings) -> Ingestor:
    spec, _ = ingestor_spec(configured, "assets")
    client = CoinCapClient("http://127.0.0.1:9/v3")
    return Ingestor(spec, configured, client, wait_for_desired_state=True)


def desired(generation: int) -> DesiredState:
    return DesiredState(component="asset-ingestor", restart_generation=generation)


def test_a_reset_restart_generation_still_restarts_the_work() -> None:
    loop = ingestor(settings())
    loop.apply_desired_state(desired(5))  # the first state read: no restart
    assert not loop._restart_requested
    loop.apply_desired_state(desired(0))  # the control record was reset, then restart sent
    assert loop._restart_requested


def test_healthz_shows_no_key_token_or_credential_in_a_url() -> None:
    configured = settings(coincap_api_key=API_KEY, control_api_token=TOKEN)
    loop = ingestor(configured)
    loop.last_error = (
        f"CoinCap is unavailable at https://proxy.example/v3/assets?limit=5&apiKey={API_KEY} "
        f"(Authorization: Bearer {TOKEN}); also https://other.example/?access_token=abc123xyz"
    )
    loop.last_error_at = datetime.now(UTC)
    shown = IngestorHealth.of(loop).model_dump_json()
    for secret in (API_KEY, TOKEN, "abc123xyz"):
        assert secret not in shown
    assert "limit=5" in shown and "https://proxy.example/v3/assets" in shown


def test_a_buffer_smaller_than_one_poll_is_refused_in_one_line() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(ingest_buffer_max_records=500, coincap_page_limit=2000)
    line = describe_settings_error(refused.value)
    assert "COINSTREAM_INGEST_BUFFER_MAX_RECORDS (500)" in line and "at least 2000" in line
    assert "\n" not in line
    assert settings(ingest_buffer_max_records=100, coincap_page_limit=100)
