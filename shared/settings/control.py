"""The control service's own settings: who may command it and how often it measures."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings.common import CommonSettings


class ControlSettings(CommonSettings):
    """Who may command the control service, which hosts it answers, and how often it measures;
    the `coinstream` command reads the token too."""

    control_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the control service's commands require (secret). Unset: the"
        " service refuses to start unless `COINSTREAM_CONTROL_ALLOW_OPEN` is set;"
        " `make run` generates one into `<state_dir>/control-token`.",
    )
    control_allow_open: bool = Field(
        default=False,
        description="Let the control service run with no token, commands open to anyone who "
        "reaches it; honoured only when `COINSTREAM_BIND_HOST` is a loopback "
        "address.",
    )
    control_allowed_hosts: str = Field(
        default="",
        description="Host names, comma-separated, under which the control service accepts "
        "commands besides `localhost`, `127.0.0.1`, `::1` and the bind address; "
        "any other `Host` is refused (DNS rebinding).",
    )
    control_answer_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long the control service reuses one measurement of `/lag`, "
        "`/freshness` and `/readyz` for every request; at most one measurement of"
        " each runs at a time.",
    )
    control_refresh_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the control service refreshes component state and lag metrics.",
    )
    control_freshness_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often the control service queries the warehouse for freshness "
        "metrics (one small query per table).",
    )

    @property
    def control_allowed_host_names(self) -> list[str]:
        """COINSTREAM_CONTROL_ALLOWED_HOSTS as lower-case names."""
        return [
            name.strip().lower() for name in self.control_allowed_hosts.split(",") if name.strip()
        ]
