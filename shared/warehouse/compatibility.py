"""Whether the warehouse Terraform made is the one the code writes to, in one line if not.

On GCP Terraform owns the dataset, tables and views (from the files ``make schemas`` generates),
so the stream worker does not create or alter them; at start it compares what exists with the
code's definitions instead. A difference is not transient (waiting will not fix it), so the
worker stops with ``WarehouseIncompatible``, whose message names every difference and the
``terraform apply`` that removes them.

What counts: each column the code writes (name, type, mode), the day partitioning and its
column, the clustering columns, and that every view exists. A column the code does not know is
tolerated when it is NULLABLE (the MERGE names its columns, so an additive change applied ahead
of a deploy does not stop the running version); a REQUIRED one is not, since no insert would
fill it. Descriptions and partition expiration are Terraform's business alone.

Where the worker owns the warehouse (the emulator) it evolves the tables itself at start
(``evolve_warehouse``): a NULLABLE column the code has and a table lacks is added, since old
rows read it as null and the MERGE, which names every column, would fail without it. Anything
else (a type or mode that differs, a new REQUIRED column, other partitioning or clustering)
would need the table rewritten, so the worker refuses it in one line instead of guessing.
"""

from __future__ import annotations

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from shared.schemas import TABLES
from shared.settings import WarehouseSettings
from shared.warehouse.client import bigquery_retry
from shared.warehouse.tables import dataset_id, relation_id, table_definition
from shared.warehouse.views import view_definitions

TERRAFORM_APPLY = "terraform -chdir=terraform apply"
"""The command that makes the warehouse match the code (docs/gcp.md)."""
TERRAFORM_ADVICE = (
    f"run `{TERRAFORM_APPLY}` with this version's terraform/ files to bring it up to date"
)
WORKER_ADVICE = (
    "the stream worker adds new NULLABLE columns by itself and changes nothing else: migrate "
    "or recreate these tables by hand (docs/warehouse.md#schema-changes)"
)

STANDARD_TYPE_NAMES = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "RECORD": "STRUCT",
}
"""BigQuery's API answers legacy type names (FLOAT) for columns created as FLOAT64."""


class WarehouseIncompatible(Exception):
    """The tables or views differ from the code's definitions; the message says how, in one
    line, and which command brings them up to date."""


def standard_type(field_type: str | None) -> str:
    name = (field_type or "").upper()
    return STANDARD_TYPE_NAMES.get(name, name)


def _mode(field: bigquery.SchemaField) -> str:
    return (field.mode or "NULLABLE").upper()


def column_differences(expected: bigquery.Table, actual: bigquery.Table) -> list[str]:
    """How the columns of ``actual`` differ from those ``expected`` names."""
    found = {field.name: field for field in actual.schema}
    known = {field.name for field in expected.schema}
    differences = []
    for field in expected.schema:
        existing = found.get(field.name)
        if existing is None:
            differences.append(f"column {field.name} is missing")
            continue
        if standard_type(existing.field_type) != standard_type(field.field_type):
            differences.append(
                f"column {field.name} is {standard_type(existing.field_type)}, "
                f"the code writes {standard_type(field.field_type)}"
            )
        if _mode(existing) != _mode(field):
            differences.append(
                f"column {field.name} is {_mode(existing)}, the code needs {_mode(field)}"
            )
    differences += [
        f"column {name} is REQUIRED but the code does not write it"
        for name, field in found.items()
        if name not in known and _mode(field) == "REQUIRED"
    ]
    return differences


def _describe_partitioning(table: bigquery.Table) -> str:
    partitioning = table.time_partitioning
    if partitioning is None:
        return "not partitioned by time"
    # A time-partitioned table with no field is partitioned by ingestion time.
    column = partitioning.field or "_PARTITIONTIME"
    return f"partitioned by {partitioning.type_} on {column}"


def table_differences(expected: bigquery.Table, actual: bigquery.Table) -> list[str]:
    """How ``actual`` differs from ``expected``: columns, time partitioning, clustering."""
    differences = column_differences(expected, actual)
    if _describe_partitioning(actual) != _describe_partitioning(expected):
        differences.append(
            f"it is {_describe_partitioning(actual)}, "
            f"the code expects {_describe_partitioning(expected)}"
        )
    expected_clustering = list(expected.clustering_fields or [])
    actual_clustering = list(actual.clustering_fields or [])
    if actual_clustering != expected_clustering:
        differences.append(
            f"it is clustered on {', '.join(actual_clustering) or 'nothing'}, "
            f"the code expects {', '.join(expected_clustering) or 'nothing'}"
        )
    return differences


def incompatibility_message(
    settings: WarehouseSettings, differences: list[str], advice: str = TERRAFORM_ADVICE
) -> str:
    """The one line the worker stops with."""
    return (
        f"the BigQuery dataset {dataset_id(settings)} is not what this version of coinstream "
        f"writes to: {'; '.join(differences)}; {advice}"
    )


def addable_columns(expected: bigquery.Table, actual: bigquery.Table) -> list[bigquery.SchemaField]:
    """The NULLABLE columns ``expected`` has and ``actual`` lacks: what can simply be added."""
    found = {field.name for field in actual.schema}
    return [
        field for field in expected.schema if field.name not in found and _mode(field) == "NULLABLE"
    ]


def warehouse_differences(client: bigquery.Client, settings: WarehouseSettings) -> list[str]:
    """Every difference between the warehouse and the code, each prefixed by the relation."""
    retry = bigquery_retry(settings)
    timeout = settings.bigquery_timeout_seconds
    try:
        client.get_dataset(dataset_id(settings), retry=retry, timeout=timeout)
    except NotFound:
        return ["it does not exist"]
    differences: list[str] = []
    for schema in TABLES:
        expected = table_definition(settings, schema)
        try:
            actual = client.get_table(expected.reference, retry=retry, timeout=timeout)
        except NotFound:
            differences.append(f"table {schema.table} does not exist")
            continue
        differences += [
            f"table {schema.table}: {difference}"
            for difference in table_differences(expected, actual)
        ]
    for name in view_definitions(settings):
        try:
            client.get_table(relation_id(settings, name), retry=retry, timeout=timeout)
        except NotFound:
            differences.append(f"view {name} does not exist")
    return differences


def check_warehouse(client: bigquery.Client, settings: WarehouseSettings) -> None:
    """Raise WarehouseIncompatible unless the tables and views are the ones the code writes.

    A warehouse that does not answer raises what the client raises (``GoogleAPIError`` and
    friends), which the caller may retry; an incompatibility it should not.
    """
    differences = warehouse_differences(client, settings)
    if differences:
        raise WarehouseIncompatible(incompatibility_message(settings, differences))


def add_columns(
    client: bigquery.Client,
    settings: WarehouseSettings,
    table: bigquery.Table,
    columns: list[bigquery.SchemaField],
) -> bigquery.Table:
    """Add NULLABLE ``columns`` to ``table`` with DDL; return the table as it is now.

    ``ALTER TABLE ... ADD COLUMN`` is what BigQuery documents for this, and its result is in
    the table's schema at once. The emulator applies it to its data but not to the schema it
    reports, so whatever the schema still lacks is patched in with ``update_table``.
    """
    retry = bigquery_retry(settings)
    timeout = settings.bigquery_timeout_seconds
    name = f"{table.project}.{table.dataset_id}.{table.table_id}"
    for field in columns:
        client.query(
            f"ALTER TABLE `{name}` ADD COLUMN IF NOT EXISTS `{field.name}` "
            f"{standard_type(field.field_type)}",
            retry=retry,
            timeout=timeout,
        ).result(timeout=timeout)
    table = client.get_table(table.reference, retry=retry, timeout=timeout)
    known = {field.name for field in table.schema}
    unlisted = [field for field in columns if field.name not in known]
    if unlisted:
        table.schema = [*table.schema, *unlisted]
        table = client.update_table(table, ["schema"], retry=retry, timeout=timeout)
    return table


def evolve_warehouse(client: bigquery.Client, settings: WarehouseSettings) -> list[str]:
    """Add the code's new NULLABLE columns to the existing tables; return them as table.column.

    Raises WarehouseIncompatible, naming every other difference, when a table differs in a way
    adding columns cannot mend. Call it after ``ensure_warehouse`` made the missing tables.
    """
    retry = bigquery_retry(settings)
    timeout = settings.bigquery_timeout_seconds
    added: list[str] = []
    differences: list[str] = []
    for schema in TABLES:
        expected = table_definition(settings, schema)
        actual = client.get_table(expected.reference, retry=retry, timeout=timeout)
        new_columns = addable_columns(expected, actual)
        if new_columns:
            actual = add_columns(client, settings, actual, new_columns)
            added += [f"{schema.table}.{field.name}" for field in new_columns]
        differences += [
            f"table {schema.table}: {difference}"
            for difference in table_differences(expected, actual)
        ]
    if differences:
        raise WarehouseIncompatible(incompatibility_message(settings, differences, WORKER_ADVICE))
    return added
