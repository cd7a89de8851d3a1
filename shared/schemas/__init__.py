"""The one definition of the asset and exchange tables; every other schema is derived from it.

The BigQuery table schema, the stream worker's typed columns and the JSON schema files that
Terraform reads (``terraform/schemas/*.json``) all come from ``ASSETS``, ``EXCHANGES`` and
``ASSET_HISTORY`` (``tables``), and a test fails when a generated file drifts from them
(``make schemas`` rewrites the files). The columns every record table shares come from the
message envelope's one definition (``shared.envelope``).

The modules: ``columns`` (column types and domains), ``table_schema`` (what a table is, and its
JSON and BigQuery forms), ``tables`` (the tables themselves), ``json_files`` (Terraform's
files). The public names are re-exported here, so callers write ``from shared.schemas import``.
"""

from shared.schemas.columns import (
    DEFAULT_MAX_TEXT_LENGTH,
    MAX_RECORD_NESTING_DEPTH,
    TIMESTAMP_MAX_MS,
    TIMESTAMP_MIN_MS,
    Column,
    ColumnType,
)
from shared.schemas.json_files import TERRAFORM_SCHEMA_DIR, json_schema_path, write_json_schemas
from shared.schemas.table_schema import STREAM_BATCH, TableSchema
from shared.schemas.tables import (
    ASSET_HISTORY,
    ASSETS,
    EXCHANGES,
    QUARANTINE,
    RECORD_TABLES,
    TABLES,
)

__all__ = [
    "ASSETS",
    "ASSET_HISTORY",
    "DEFAULT_MAX_TEXT_LENGTH",
    "EXCHANGES",
    "MAX_RECORD_NESTING_DEPTH",
    "QUARANTINE",
    "RECORD_TABLES",
    "STREAM_BATCH",
    "TABLES",
    "TERRAFORM_SCHEMA_DIR",
    "TIMESTAMP_MAX_MS",
    "TIMESTAMP_MIN_MS",
    "Column",
    "ColumnType",
    "TableSchema",
    "json_schema_path",
    "write_json_schemas",
]
