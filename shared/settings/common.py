"""What every coinstream process reads: where state and caches live, and how much it logs.

Every settings group extends ``CommonSettings``, so each reads ``COINSTREAM_*`` variables and
``.env`` the same way, and a process's class holds these fields whatever groups it combines.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
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
    log_level: str = Field(
        default="INFO",
        description="Log level of every coinstream service.",
    )
