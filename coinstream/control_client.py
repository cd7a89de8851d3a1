"""The control service over HTTP, as the ``coinstream`` command uses it.

Every failure becomes a ``ControlClientError`` whose message is one line saying what is wrong and
what to do; the token is sent only in the ``Authorization`` header and appears in no message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from shared.control_state import COMPONENTS
from shared.settings import Settings

TIMEOUT_SECONDS = 20.0
"""Long enough for ``/lag`` and ``/freshness``, which ask Kafka and the warehouse."""

TOKEN_FILE_NAME = "control-token"  # noqa: S105 (the name of a file, not a token)
"""The file in ``COINSTREAM_STATE_DIR`` where `make run` keeps the token it generated
(``deploy/local/control_access.py`` writes it; a unit test holds the two names equal)."""

COMMANDS: dict[str, str] = {
    "pause": "PUT",
    "resume": "PUT",
    "stop": "PUT",
    "start": "PUT",
    "restart": "POST",
}
"""Each command the control service takes, and its HTTP method."""


class ControlClientError(Exception):
    """The command could not be done; the message is one line for the terminal."""


class ControlUnreachable(ControlClientError):
    """Nothing answers at the control service's address."""


class TokenRefused(ControlClientError):
    """No token, or the wrong one."""


class UnknownComponent(ControlClientError):
    """A component name the control service does not know."""


def control_url(settings: Settings) -> str:
    return settings.control_url or f"http://127.0.0.1:{settings.control_port}"


def token_file(settings: Settings) -> Path:
    return settings.state_dir / TOKEN_FILE_NAME


def read_token(settings: Settings) -> str | None:
    """COINSTREAM_CONTROL_API_TOKEN when set, else the token `make run` wrote; None if neither."""
    if settings.control_api_token is not None:
        return settings.control_api_token.get_secret_value().strip() or None
    try:
        return token_file(settings).read_text().strip() or None
    except OSError:
        return None


def require_known(component: str) -> str:
    if component not in COMPONENTS:
        raise UnknownComponent(
            f"unknown component {component!r}; use one of: {', '.join(COMPONENTS)}"
        )
    return component


class ControlClient:
    """Reads and commands of one control service; a context manager owning its HTTP client."""

    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.settings = settings
        self.base_url = (base_url or control_url(settings)).rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT_SECONDS)

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def get(self, path: str, accept: tuple[int, ...] = (200,)) -> Any:
        """The JSON answer of ``GET path``; statuses outside ``accept`` are errors."""
        return self._answer(self._send("GET", path), accept)

    def command(self, component: str, command: str, reason: str | None, requested_by: str) -> Any:
        """Send ``command`` for ``component``; the answer says the desired state stored."""
        require_known(component)
        token = read_token(self.settings)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"requested_by": requested_by, **({"reason": reason} if reason else {})}
        response = self._send(
            COMMANDS[command], f"/components/{component}/{command}", headers=headers, json=body
        )
        return self._answer(response, (202,))

    def _send(self, method: str, path: str, **request: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **request)
        except httpx.TimeoutException:
            raise ControlUnreachable(
                f"the control service at {self.base_url} did not answer {path} within "
                f"{TIMEOUT_SECONDS:.0f} s; check its log, or `curl {self.base_url}/readyz`"
            ) from None
        except httpx.TransportError:
            raise ControlUnreachable(
                f"the control service at {self.base_url} does not answer; start it with "
                "`make run` (or set COINSTREAM_CONTROL_URL to where it runs)"
            ) from None

    def _answer(self, response: httpx.Response, accept: tuple[int, ...]) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in accept and body is not None:
            return body
        detail = body.get("detail") if isinstance(body, dict) else None
        if response.status_code in (401, 403):
            raise TokenRefused(self._token_problem(response.status_code))
        if response.status_code == 404 and "unknown component" in str(detail):
            raise UnknownComponent(str(detail))
        reason = detail if isinstance(detail, str) else f"HTTP {response.status_code}"
        raise ControlClientError(
            f"the control service refused {response.request.method} {response.request.url.path}"
            f": {reason}"
        )

    def _token_problem(self, status: int) -> str:
        where = (
            "COINSTREAM_CONTROL_API_TOKEN"
            if self.settings.control_api_token is not None
            else str(token_file(self.settings))
        )
        if status == 401:
            return (
                f"the control service at {self.base_url} needs a token for commands, and none "
                f"was found (401); set COINSTREAM_CONTROL_API_TOKEN, or run `make run`, which "
                f"writes one to {token_file(self.settings)}"
            )
        return (
            f"the control service at {self.base_url} refused the token from {where} (403: "
            "wrong token); use the value the service was started with (with `make run`, the "
            f"contents of {token_file(self.settings)})"
        )
