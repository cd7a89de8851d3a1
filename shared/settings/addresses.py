"""Where each coinstream process listens, and where the others reach it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from shared.settings.common import CommonSettings


class AddressSettings(CommonSettings):
    """Every service's port in one group: a service listens on its own, the control service
    reaches the others at theirs, and the local stack scrapes and waits on all of them."""

    bind_host: str = Field(
        default="127.0.0.1",
        description="Address the services listen on (`0.0.0.0` inside containers).",
    )
    asset_ingestor_port: int = Field(
        default=8101,
        description="HTTP port of the asset ingestor (`/healthz`, `/metrics`).",
    )
    exchange_ingestor_port: int = Field(
        default=8102,
        description="HTTP port of the exchange ingestor (`/healthz`, `/metrics`).",
    )
    stream_worker_port: int = Field(
        default=8103,
        description="HTTP port of the stream worker (`/healthz`, `/metrics`).",
    )
    control_port: int = Field(
        default=8100,
        description="HTTP port of the control service (API, `/healthz`, `/metrics`).",
    )
    dashboard_port: int = Field(
        default=8200,
        description="HTTP port of the web dashboard (page, JSON API, `/healthz`, `/metrics`).",
    )
    asset_ingestor_url: str | None = Field(
        default=None,
        description="Where the control service reaches the asset ingestor. Unset: "
        "`http://127.0.0.1:<asset_ingestor_port>`.",
    )
    exchange_ingestor_url: str | None = Field(
        default=None,
        description="Where the control service reaches the exchange ingestor. Unset: "
        "`http://127.0.0.1:<exchange_ingestor_port>`.",
    )
    stream_worker_url: str | None = Field(
        default=None,
        description="Where the control service reaches the stream worker. Unset: "
        "`http://127.0.0.1:<stream_worker_port>`.",
    )
    control_url: str | None = Field(
        default=None,
        description="Where the `coinstream` command reaches the control service ([command "
        "line](cli.md)). Unset: `http://127.0.0.1:<control_port>`.",
    )

    @field_validator(
        "asset_ingestor_url", "exchange_ingestor_url", "stream_worker_url", "control_url"
    )
    @classmethod
    def _component_url_is_http(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"COINSTREAM_{str(info.field_name).upper()} must look like "
                f"http://asset-ingestor:8101, got {value!r}"
            )
        return value.rstrip("/")

    @property
    def component_urls(self) -> dict[str, str]:
        """Base URL of each component the control service watches, by component name."""
        return {
            "asset-ingestor": self.asset_ingestor_url
            or f"http://127.0.0.1:{self.asset_ingestor_port}",
            "exchange-ingestor": self.exchange_ingestor_url
            or f"http://127.0.0.1:{self.exchange_ingestor_port}",
            "stream-worker": self.stream_worker_url
            or f"http://127.0.0.1:{self.stream_worker_port}",
        }

    @property
    def bind_host_is_loopback(self) -> bool:
        """True when the services listen on loopback only, out of reach of other machines."""
        if self.bind_host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.bind_host).is_loopback
        except ValueError:
            return False
