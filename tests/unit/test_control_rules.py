"""The control service's rules without any process: access, secrets, command transitions."""

from __future__ import annotations

from typing import Any

import pytest

from services.control.components import plan_command
from services.control.errors import InvalidTransition
from services.control.models import Command
from services.control.security import StartupRefused, check_access_settings, redact
from shared.control_state import Desired, DesiredState
from shared.settings import Settings

pytestmark = pytest.mark.unit


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


# --- access ---------------------------------------------------------------------------------


def test_a_token_means_token_access() -> None:
    assert check_access_settings(settings(control_api_token="s3cret-token-long-enough")) is False


def test_no_token_is_refused_with_what_to_set() -> None:
    with pytest.raises(StartupRefused, match="COINSTREAM_CONTROL_API_TOKEN"):
        check_access_settings(settings())


def test_open_access_is_honoured_on_loopback_only() -> None:
    assert check_access_settings(settings(control_allow_open=True)) is True
    assert check_access_settings(settings(control_allow_open=True, bind_host="::1")) is True
    assert check_access_settings(settings(control_allow_open=True, bind_host="localhost"))
    with pytest.raises(StartupRefused, match="loopback"):
        check_access_settings(settings(control_allow_open=True, bind_host="0.0.0.0"))


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(StartupRefused, match="empty"):
        check_access_settings(settings(control_api_token="  "))


def test_a_short_token_is_refused_in_one_line() -> None:
    with pytest.raises(StartupRefused) as refused:
        check_access_settings(settings(control_api_token="fifteen-chars!!"))
    assert "fewer than 16" in str(refused.value) and "\n" not in str(refused.value)
    assert "fifteen-chars" not in str(refused.value)
    assert check_access_settings(settings(control_api_token="sixteen-chars!!!")) is False


def test_secrets_are_redacted_from_what_we_show() -> None:
    configured = settings(control_api_token="tok-123456", coincap_api_key="key-abcdef")
    text = "GET https://x/v3?apiKey=key-abcdef failed; Bearer tok-123456"
    shown = redact(text, configured)
    assert shown is not None
    assert "key-abcdef" not in shown and "tok-123456" not in shown
    assert shown.count("[redacted]") == 2
    assert "tok-123456" not in repr(configured)


# --- transitions ----------------------------------------------------------------------------


def desired(state: Desired, generation: int = 0) -> DesiredState:
    return DesiredState(component="asset-ingestor", state=state, restart_generation=generation)


ALLOWED = [
    (Desired.RUNNING, Command.PAUSE, Desired.PAUSED, 0),
    (Desired.PAUSED, Command.PAUSE, Desired.PAUSED, 0),
    (Desired.PAUSED, Command.RESUME, Desired.RUNNING, 0),
    (Desired.RUNNING, Command.RESUME, Desired.RUNNING, 0),
    (Desired.RUNNING, Command.STOP, Desired.STOPPED, 0),
    (Desired.PAUSED, Command.STOP, Desired.STOPPED, 0),
    (Desired.STOPPED, Command.STOP, Desired.STOPPED, 0),
    (Desired.STOPPED, Command.START, Desired.RUNNING, 0),
    (Desired.RUNNING, Command.START, Desired.RUNNING, 0),
    (Desired.RUNNING, Command.RESTART, Desired.RUNNING, 1),
]


@pytest.mark.parametrize(("current", "command", "state", "generation"), ALLOWED)
def test_allowed_commands(
    current: Desired, command: Command, state: Desired, generation: int
) -> None:
    assert plan_command(desired(current), command) == (state, generation)


@pytest.mark.parametrize(
    ("current", "command", "advice"),
    [
        (Desired.STOPPED, Command.PAUSE, "PUT /components/asset-ingestor/start"),
        (Desired.STOPPED, Command.RESUME, "PUT /components/asset-ingestor/start"),
        (Desired.PAUSED, Command.START, "PUT /components/asset-ingestor/resume"),
        (Desired.PAUSED, Command.RESTART, "PUT /components/asset-ingestor/resume"),
        (Desired.STOPPED, Command.RESTART, "PUT /components/asset-ingestor/start"),
    ],
)
def test_refused_commands_say_what_to_do(current: Desired, command: Command, advice: str) -> None:
    with pytest.raises(InvalidTransition) as refused:
        plan_command(desired(current), command)
    assert advice in refused.value.detail


def test_each_restart_is_a_new_generation() -> None:
    assert plan_command(desired(Desired.RUNNING, 4), Command.RESTART) == (Desired.RUNNING, 5)
