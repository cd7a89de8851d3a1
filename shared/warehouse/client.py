"""The BigQuery client, for real BigQuery and the local emulator alike, and its bounded retry.

The emulator speaks BigQuery's REST API, so the same ``google-cloud-bigquery`` client serves both;
only the endpoint and credentials differ. Every call gets a short timeout and retry deadline,
because the client's default is to retry for ten minutes against a port nobody answers on.
"""

from __future__ import annotations

from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from shared.settings import WarehouseSettings


def bigquery_retry(settings: WarehouseSettings) -> Retry:
    """The client's default retry policy, bounded by our deadline."""
    return bigquery.DEFAULT_RETRY.with_deadline(settings.bigquery_timeout_seconds)


def create_bigquery_client(settings: WarehouseSettings) -> bigquery.Client:
    """A client for real BigQuery when ``gcp_project`` is set, else for the local emulator.

    Real BigQuery authenticates with Application Default Credentials
    (``gcloud auth application-default login`` or a service-account key file).
    """
    if not settings.uses_bigquery_emulator:
        return bigquery.Client(project=settings.gcp_project, location=settings.bigquery_location)
    return bigquery.Client(
        project=settings.bigquery_emulator_project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=settings.bigquery_emulator_url),
    )
