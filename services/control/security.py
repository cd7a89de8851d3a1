"""Who may change things: a bearer token from settings, compared in constant time.

Reading endpoints are open (health, state, lag and freshness hold no secret). Mutating
endpoints need ``Authorization: Bearer <COINSTREAM_CONTROL_API_TOKEN>``: 401 without one, 403
with a wrong one; a token shorter than 16 characters is refused at start. With no token
configured the service refuses to start, unless it is told to run open
(``COINSTREAM_CONTROL_ALLOW_OPEN=true``) and listens on loopback only, where nobody else can
reach it. Where a request comes from (Origin, Host) is checked in ``request_origin``.
"""

from __future__ import annotations

import secrets

from shared.redaction import redact_secrets
from shared.settings import ControlServiceSettings

MIN_TOKEN_LENGTH = 16
"""Shorter tokens are refused at start: a guessable token is no access control."""


class StartupRefused(Exception):
    """The service must not start with these settings; the message says what to change."""


def check_access_settings(settings: ControlServiceSettings) -> bool:
    """Return True for open access (no token needed), False for token access, or raise."""
    if settings.control_api_token is not None:
        token = settings.control_api_token.get_secret_value().strip()
        if not token:
            raise StartupRefused(
                "COINSTREAM_CONTROL_API_TOKEN is empty; set it to a long random string "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise StartupRefused(
                f"COINSTREAM_CONTROL_API_TOKEN has {len(token)} characters, fewer than "
                f"{MIN_TOKEN_LENGTH}, and could be guessed; set a long random one (e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return False
    if not settings.control_allow_open:
        raise StartupRefused(
            "the control service has no token: set COINSTREAM_CONTROL_API_TOKEN (e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or, on a "
            "loopback-only bind, COINSTREAM_CONTROL_ALLOW_OPEN=true to run without one"
        )
    if not settings.bind_host_is_loopback:
        raise StartupRefused(
            f"COINSTREAM_CONTROL_ALLOW_OPEN=true is honoured only on a loopback address, and "
            f"COINSTREAM_BIND_HOST is {settings.bind_host}; set COINSTREAM_CONTROL_API_TOKEN, "
            "or bind to 127.0.0.1"
        )
    return True


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison, so timing reveals nothing about how much of a guess was right."""
    return secrets.compare_digest(presented.encode(), expected.encode())


def redact(text: str | None, settings: ControlServiceSettings) -> str | None:
    """``text`` with every secret we hold replaced, for anything we show or log."""
    return redact_secrets(text, settings)
