"""The warehouse: real BigQuery in a GCP project, or the local BigQuery emulator."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from shared.settings.common import CommonSettings


class WarehouseSettings(CommonSettings):
    """Real BigQuery in a GCP project or the local emulator, the dataset, and who creates its
    tables and views."""

    gcp_project: str | None = Field(
        default=None,
        description="GCP project for real BigQuery (Application Default Credentials). Unset: "
        "the local BigQuery emulator is the warehouse.",
    )
    bigquery_dataset: str = Field(
        default="coinstream",
        description="BigQuery dataset name.",
    )
    bigquery_location: str = Field(
        default="US",
        description="BigQuery dataset location.",
    )
    bigquery_emulator_url: str = Field(
        default="http://127.0.0.1:9050",
        description="BigQuery emulator REST endpoint, used when `COINSTREAM_GCP_PROJECT` is unset.",
    )
    bigquery_emulator_grpc_port: int = Field(
        default=9060,
        description="gRPC port of the local BigQuery emulator.",
    )
    bigquery_emulator_project: str = Field(
        default="coinstream-local",
        description="Project name inside the local BigQuery emulator.",
    )
    bigquery_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Timeout of one BigQuery API call, and the deadline for retrying it.",
    )
    table_partition_expiration_days: int | None = Field(
        default=None,
        description="Partition expiration of the tables in days, when the stream worker "
        "creates them; unset keeps all. With Terraform, its "
        "`partition_expiration_days` variable sets it.",
    )
    warehouse_schema_owner: Literal["worker", "terraform"] | None = Field(
        default=None,
        description="Who creates the dataset, tables and views: `worker` (the stream worker, "
        "at start) or `terraform` (the worker only checks that they match the "
        "code and stops, with exit status 2, if not; "
        "[GCP](gcp.md#who-owns-the-tables-and-views)). Unset: `worker` on the "
        "emulator, `terraform` on GCP.",
    )

    @field_validator("bigquery_emulator_url")
    @classmethod
    def _emulator_url_has_port(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or parts.port is None:
            raise ValueError(
                "COINSTREAM_BIGQUERY_EMULATOR_URL must look like http://127.0.0.1:9050, "
                f"got {value!r}"
            )
        return value.rstrip("/")

    @property
    def uses_bigquery_emulator(self) -> bool:
        """True when no GCP project is set, so the warehouse is the local emulator."""
        return self.gcp_project is None

    @property
    def worker_owns_warehouse_schema(self) -> bool:
        """True when the stream worker creates the dataset, tables and views at start.

        One owner per environment: on the emulator nothing else would create them; on GCP
        Terraform creates them from the same generated files, and the worker only checks them.
        """
        if self.warehouse_schema_owner is None:
            return self.uses_bigquery_emulator
        return self.warehouse_schema_owner == "worker"

    @property
    def warehouse_project(self) -> str:
        """The project tables live in: the GCP project, or the emulator's own project name."""
        return self.gcp_project or self.bigquery_emulator_project

    @property
    def bigquery_emulator_port(self) -> int:
        port = urlsplit(self.bigquery_emulator_url).port
        assert port is not None  # guaranteed by the validator
        return port
