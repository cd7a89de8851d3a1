"""The JSON schema files Terraform reads (``terraform/schemas/*.json``), written from the
table definitions by ``make schemas`` (``python -m shared.schemas``)."""

from __future__ import annotations

from pathlib import Path

from shared.schemas.table_schema import TableSchema
from shared.schemas.tables import TABLES

TERRAFORM_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "terraform" / "schemas"


def json_schema_path(directory: Path, schema: TableSchema) -> Path:
    return directory / f"{schema.table}.json"


def write_json_schemas(directory: Path) -> list[Path]:
    """Write the JSON schema files Terraform reads; ``make schemas`` calls this."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for schema in TABLES:
        path = json_schema_path(directory, schema)
        path.write_text(schema.json_schema_text())
        written.append(path)
    return written
