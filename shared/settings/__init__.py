"""coinstream's settings, one group per concern, read from ``COINSTREAM_*`` variables or ``.env``.

Each group (``KafkaSettings``, ``WarehouseSettings``, ...) is a module of its own with its fields,
checks and derived values; each process loads the combination of the groups it reads
(``services``), and ``Settings`` combines them all. docs/settings.md is generated from the groups
(``python -m shared.settings.docs``).
"""

from __future__ import annotations

import sys
from typing import TypeVar, overload

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from shared.settings.addresses import AddressSettings
from shared.settings.coincap import CoinCapSettings
from shared.settings.common import PROJECT_ROOT, CommonSettings
from shared.settings.control import ControlSettings
from shared.settings.dashboard import DashboardSettings
from shared.settings.ingest import IngestSettings
from shared.settings.kafka import KafkaSettings
from shared.settings.local_stack import LocalStackSettings
from shared.settings.services import (
    CoinCapKafkaSettings,
    ControlServiceSettings,
    DashboardServiceSettings,
    IngestorSettings,
    Settings,
    WorkerSettings,
)
from shared.settings.spark import SPARK_MASTER, SparkSettings
from shared.settings.stream import StreamSettings
from shared.settings.warehouse import WarehouseSettings

__all__ = [
    "PROJECT_ROOT",
    "SPARK_MASTER",
    "AddressSettings",
    "CoinCapKafkaSettings",
    "CoinCapSettings",
    "CommonSettings",
    "ControlServiceSettings",
    "ControlSettings",
    "DashboardServiceSettings",
    "DashboardSettings",
    "IngestSettings",
    "IngestorSettings",
    "KafkaSettings",
    "LocalStackSettings",
    "Settings",
    "SparkSettings",
    "StreamSettings",
    "WarehouseSettings",
    "WorkerSettings",
    "describe_settings_error",
    "get_settings",
    "load_settings_or_exit",
]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

_read_once: dict[type[BaseSettings], BaseSettings] = {}


@overload
def load_settings_or_exit() -> Settings: ...
@overload
def load_settings_or_exit(settings_class: type[SettingsT]) -> SettingsT: ...
def load_settings_or_exit(settings_class: type[BaseSettings] = Settings) -> BaseSettings:
    """Settings for a process's entry point: a bad variable ends the process with one line.

    A service passes its own class (``IngestorSettings``, ...), so only the groups it reads
    can refuse its start.
    """
    try:
        return settings_class()
    except ValidationError as error:
        print(f"coinstream: {describe_settings_error(error)}", file=sys.stderr)
        raise SystemExit(2) from None


@overload
def get_settings() -> Settings: ...
@overload
def get_settings(settings_class: type[SettingsT]) -> SettingsT: ...
def get_settings(settings_class: type[BaseSettings] = Settings) -> BaseSettings:
    """The process-wide settings of ``settings_class``, read once. Tests build their own."""
    if settings_class not in _read_once:
        _read_once[settings_class] = settings_class()
    return _read_once[settings_class]


def describe_settings_error(error: ValidationError) -> str:
    """One line naming each bad ``COINSTREAM_`` variable and what is wrong with it."""
    problems = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not problem["loc"]:  # a rule across settings, which names its variables itself
            problems.append(message)
            continue
        variable = "COINSTREAM_" + str(problem["loc"][0]).upper()
        problems.append(message if variable in message else f"{variable}: {message}")
    return "invalid settings: " + "; ".join(problems)
