"""The BigQuery Storage Write API client, for real BigQuery and the local emulator alike.

The emulator serves the Storage Write API over plain gRPC on its own port
(``bigquery_emulator_grpc_port``), without credentials; real BigQuery is the client's default
endpoint with Application Default Credentials, as for ``shared.warehouse.create_bigquery_client``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import grpc
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import (
    BigQueryWriteGrpcTransport,
)

from shared.schemas import TableSchema
from shared.settings import WarehouseSettings


def create_write_client(settings: WarehouseSettings) -> BigQueryWriteClient:
    """A Storage Write API client for real BigQuery when ``gcp_project`` is set, else for the
    local emulator's gRPC port."""
    if not settings.uses_bigquery_emulator:
        return BigQueryWriteClient()  # type: ignore[no-untyped-call]
    host = urlsplit(settings.bigquery_emulator_url).hostname or "127.0.0.1"
    channel = grpc.insecure_channel(f"{host}:{settings.bigquery_emulator_grpc_port}")
    return BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))  # type: ignore[no-untyped-call]


def table_path(settings: WarehouseSettings, table: TableSchema) -> str:
    """``projects/P/datasets/D/tables/T``: how the Storage Write API names a table."""
    return (
        f"projects/{settings.warehouse_project}/datasets/{settings.bigquery_dataset}"
        f"/tables/{table.table}"
    )
