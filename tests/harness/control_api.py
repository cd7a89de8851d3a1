"""The control service over HTTP, as a client (the ``coinstream`` command, a script) uses it."""

from __future__ import annotations

from typing import Any

import httpx


class ControlApi:
    """The control service at ``base_url``, sending ``token`` with commands unless told not to."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.token = token

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=20)

    def json(self, path: str) -> Any:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def component(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.json(f"/components/{name}")
        return body

    def command(
        self,
        name: str,
        command: str,
        token: str | None = None,
        anonymous: bool = False,
        **request: Any,
    ) -> httpx.Response:
        """``PUT`` (or ``POST`` for restart) a command, with our token, ``token``, or none."""
        headers = dict(request.pop("headers", {}))
        sent = None if anonymous else token or self.token
        if sent is not None:
            headers["Authorization"] = f"Bearer {sent}"
        return httpx.request(
            "POST" if command == "restart" else "PUT",
            f"{self.base_url}/components/{name}/{command}",
            headers=headers,
            timeout=20,
            **request,
        )
