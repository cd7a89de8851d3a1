"""What the dashboard's routes get injected with ``Depends``: settings and the warehouse client.

The client is made on first use rather than at start, so that a dashboard whose warehouse is
unreachable or not signed in still starts and its page says what is wrong, instead of the
process dying before anyone can see why.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from google.cloud import bigquery

from shared.settings import DashboardServiceSettings
from shared.warehouse import UNREACHABLE_ERRORS, create_bigquery_client, warehouse_unavailable


@dataclass
class DashboardResources:
    """The long-lived objects of one dashboard process."""

    settings: DashboardServiceSettings
    _client: bigquery.Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> bigquery.Client:
        """The BigQuery client; WarehouseUnavailable when it cannot be made (no credentials)."""
        with self._lock:
            if self._client is None:
                try:
                    self._client = create_bigquery_client(self.settings)
                except UNREACHABLE_ERRORS as error:
                    raise warehouse_unavailable(self.settings, error) from None
            return self._client


def get_resources(request: Request) -> DashboardResources:
    resources: DashboardResources = request.app.state.resources
    return resources


ResourcesDep = Annotated[DashboardResources, Depends(get_resources)]


def get_settings(resources: ResourcesDep) -> DashboardServiceSettings:
    return resources.settings


def get_client(resources: ResourcesDep) -> bigquery.Client:
    return resources.client()


SettingsDep = Annotated[DashboardServiceSettings, Depends(get_settings)]
ClientDep = Annotated[bigquery.Client, Depends(get_client)]
