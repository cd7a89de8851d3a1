"""Each process's settings: the groups it reads, combined, and the rules that span them.

A process reads and validates only its groups, so a bad dashboard setting cannot stop an
ingestor. Attribute access stays flat (``settings.kafka_bootstrap_servers``) because the
combinations inherit their groups' fields, and a function typed with one group accepts every
combination that has it: mypy proves each service passes what each function reads.
"""

from __future__ import annotations

from pydantic import model_validator

from shared.settings.addresses import AddressSettings
from shared.settings.coincap import CoinCapSettings
from shared.settings.common import CommonSettings
from shared.settings.control import ControlSettings
from shared.settings.dashboard import DashboardSettings
from shared.settings.ingest import IngestSettings
from shared.settings.kafka import KafkaSettings
from shared.settings.local_stack import LocalStackSettings
from shared.settings.spark import SparkSettings
from shared.settings.stream import StreamSettings
from shared.settings.warehouse import WarehouseSettings


class CoinCapKafkaSettings(CoinCapSettings, KafkaSettings):
    """CoinCap's pages and the topics that carry their records: what the ingestors, the
    backfill and the stream worker share, and the rule that ties the snapshot window to the
    topics' retention."""

    @model_validator(mode="after")
    def _snapshot_window_covers_retention(self) -> CoinCapKafkaSettings:
        if self.snapshot_time_window_hours < self.topic_retention_hours:
            raise ValueError(
                f"COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS ({self.snapshot_time_window_hours:g}) is "
                f"shorter than COINSTREAM_TOPIC_RETENTION_HOURS ({self.topic_retention_hours}): "
                "the worker would quarantine records still in Kafka for their age; raise the "
                "window to at least the retention"
            )
        return self


class IngestorSettings(CoinCapKafkaSettings, IngestSettings, AddressSettings):
    """An asset or exchange ingestor (`python -m services.ingestor`)."""

    @model_validator(mode="after")
    def _ingest_buffer_holds_a_poll(self) -> IngestorSettings:
        # A buffer smaller than one page of records would drop every poll that arrives while
        # the one before it is still being delivered: all of them while Kafka is down.
        if self.ingest_buffer_max_records < self.coincap_page_limit:
            raise ValueError(
                f"COINSTREAM_INGEST_BUFFER_MAX_RECORDS ({self.ingest_buffer_max_records}) is "
                f"smaller than one poll's page of records (COINSTREAM_COINCAP_PAGE_LIMIT, "
                f"{self.coincap_page_limit}), so polls would be dropped whenever Kafka is slow; "
                f"raise it to at least {self.coincap_page_limit}"
            )
        return self


class WorkerSettings(
    CoinCapKafkaSettings, WarehouseSettings, StreamSettings, SparkSettings, AddressSettings
):
    """The stream worker (`python -m services.stream_worker`); it reads the CoinCap group for
    the snapshot window it quarantines rows by."""


class ControlServiceSettings(
    CoinCapSettings, KafkaSettings, WarehouseSettings, ControlSettings, AddressSettings
):
    """The control service (`python -m services.control`). It reads the CoinCap group only for
    the API key, which it redacts from the ingestors' errors it relays."""


class DashboardServiceSettings(
    CoinCapSettings, WarehouseSettings, StreamSettings, DashboardSettings, AddressSettings
):
    """The web dashboard (`python -m services.dashboard`): the warehouse it shows, whether its
    data is simulated, and the worker's trigger it refreshes by."""


class Settings(
    IngestorSettings,
    WorkerSettings,
    ControlServiceSettings,
    DashboardServiceSettings,
    LocalStackSettings,
):
    """Every group: the `coinstream` command and the local stack, which start or drive every
    service and so must agree with all of them, read this; so do tests and benchmarks."""


SERVICE_SETTINGS: dict[str, type[CommonSettings]] = {
    "ingestors": IngestorSettings,
    "stream worker": WorkerSettings,
    "control service": ControlServiceSettings,
    "dashboard": DashboardServiceSettings,
    "CoinCap simulator": CoinCapSettings,
    "`coinstream` command": Settings,
    "local stack": Settings,
}
"""Which class each process loads, by the name docs/settings.md gives it."""
