"""Warehouse access shared by the stream worker, the control service and the dashboard.

One module per job: ``client`` (the BigQuery client, real or emulated, and its bounded retry),
``tables`` (where the dataset, tables and views live, and creating the tables), ``views`` (the
views dashboards read), ``reads`` (queries with a deadline, and the newest row of a table) and
``errors`` (saying which warehouse did not answer and what to check) and ``compatibility``
(whether the tables and views are the ones the code writes to, and adding new nullable
columns). Import from here.
"""

from shared.warehouse.client import bigquery_retry, create_bigquery_client
from shared.warehouse.compatibility import (
    WarehouseIncompatible,
    check_warehouse,
    evolve_warehouse,
)
from shared.warehouse.errors import (
    UNREACHABLE_ERRORS,
    WarehouseUnavailable,
    describe_warehouse,
    warehouse_unavailable,
)
from shared.warehouse.reads import NewestRow, QueryParameter, newest_row, run_query
from shared.warehouse.tables import (
    dataset_id,
    ensure_warehouse,
    relation_id,
    table_definition,
    table_id,
)
from shared.warehouse.views import ensure_views, view_definitions

__all__ = [
    "UNREACHABLE_ERRORS",
    "NewestRow",
    "QueryParameter",
    "WarehouseIncompatible",
    "WarehouseUnavailable",
    "bigquery_retry",
    "check_warehouse",
    "create_bigquery_client",
    "dataset_id",
    "describe_warehouse",
    "ensure_views",
    "ensure_warehouse",
    "evolve_warehouse",
    "newest_row",
    "relation_id",
    "run_query",
    "table_definition",
    "table_id",
    "view_definitions",
    "warehouse_unavailable",
]
