"""What every coinstream process reads: where state and caches live, and how much it logs.

Every settings group extends ``CommonSettings``, so each reads ``COINSTREAM_*`` variables and
``.env`` the same way, and a process's class holds these fields whatever groups it combines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


class CommonSettings(BaseSettings):
    """The folders of the local state and caches, and the log level of every process."""

    model_config = SettingsConfigDict(
        env_prefix="COINSTREAM_",
        # COINSTREAM_ENV_FILE picks another file (tests point it at /dev/null).
        env_file=os.environ.get("COINSTREAM_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".state",
        description="Where the local broker and emulator keep their data (survives restarts).",
    )
    cache_dir: Path = Field(
        default=PROJECT_ROOT / ".cache",
        description="Where setup puts downloaded jars; runs after setup need no network.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description=(
            "Log level of every coinstream service: DEBUG adds a line per poll and per micro-batch "
            "(at INFO, the first of each and then one summary a minute); libraries stay at INFO."
        ),
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description=(
            "How services write their lines: `json` (one object per line, for Compose, files and "
            "log collectors), `console` (level and message, coloured unless NO_COLOR is set), or "
            "`auto`: console when the output (`make run`'s terminal) is a terminal, else JSON."
        ),
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        """``debug`` means DEBUG."""
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_in_any_case(cls, value: object) -> object:
        """``Console`` means console."""
        return value.strip().lower() if isinstance(value, str) else value
