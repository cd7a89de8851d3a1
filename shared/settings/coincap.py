"""The CoinCap API: where it is, what a request may cost and take, and what a page may say."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings.common import CommonSettings


class CoinCapSettings(CommonSettings):
    """Where CoinCap is (or the bundled simulator that stands in for it without a key), what
    its requests may cost and take, and how far from now a page's snapshot time may be, which
    the stream worker checks again."""

    coincap_api_key: SecretStr | None = Field(
        default=None,
        description="CoinCap v3 API key (secret). Unset: ingestors poll the bundled simulator.",
    )
    coincap_base_url: str = Field(
        default="https://rest.coincap.io/v3",
        description="CoinCap API base URL, used when an API key is set.",
    )
    coincap_simulator_port: int = Field(
        default=8090,
        description="Port of the bundled CoinCap simulator (no API key set).",
    )
    coincap_simulator_host: str = Field(
        default="127.0.0.1",
        description="Host of the bundled CoinCap simulator (its service name under compose).",
    )
    coincap_page_limit: int = Field(
        default=2000,
        ge=1,
        le=2000,
        description="Records per CoinCap request (API maximum 2000).",
    )
    coincap_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Timeout of one CoinCap HTTP request.",
    )
    coincap_max_response_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest CoinCap response body read (8 MiB); a larger one is refused and "
        "counted, and reading stops at the limit instead of filling memory.",
    )
    coincap_max_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of a CoinCap request on 5xx, 429, connection errors.",
    )
    coincap_monthly_credits: int = Field(
        default=2500,
        ge=1,
        description="CoinCap credits the API key may spend a month; the two ingestors share "
        "them equally and poll no faster than that allows.",
    )
    coincap_credits_per_call: float = Field(
        default=1.0,
        gt=0,
        description="CoinCap credits one API call costs.",
    )
    backfill_max_points_per_window: int = Field(
        default=2000,
        ge=1,
        description="Most history points one `coinstream backfill` request asks CoinCap for: "
        "a range is split into windows of this many intervals. CoinCap's limit is"
        " not documented reliably; lower it if CoinCap answers a window with an "
        "error ([backfill](backfill.md)).",
    )
    snapshot_time_window_hours: float = Field(
        default=720.0,
        gt=0,
        description="How far from now, either way, a snapshot's time (CoinCap's page "
        "`timestamp`) may be: a page outside it is a malformed response at "
        "ingest, and the stream worker quarantines an asset or exchange row "
        "outside it. At least `COINSTREAM_TOPIC_RETENTION_HOURS`, so a backlog "
        "still in Kafka is never quarantined for its age.",
    )

    @property
    def uses_coincap_simulator(self) -> bool:
        """True when no API key is set, so ingestors poll the bundled simulator."""
        return self.coincap_api_key is None

    @property
    def coincap_url(self) -> str:
        """The API the ingestors poll: CoinCap itself with a key, else the local simulator."""
        if self.uses_coincap_simulator:
            return f"http://{self.coincap_simulator_host}:{self.coincap_simulator_port}/v3"
        return self.coincap_base_url.rstrip("/")
