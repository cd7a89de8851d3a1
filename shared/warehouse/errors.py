"""When the warehouse does not answer: one message naming it, the failure, and what to check.

Every service raises or reports ``WarehouseUnavailable`` with this message and answers it in its
own way (the control service's ``DependencyUnavailable``, the dashboard's 503 body), so an
operator reads the same words, with the same advice, wherever the warehouse is missed.
"""

from __future__ import annotations

from google.api_core.exceptions import GoogleAPIError, RetryError
from google.auth.exceptions import GoogleAuthError
from requests.exceptions import RequestException

from shared.settings import WarehouseSettings

UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    GoogleAPIError,
    GoogleAuthError,  # no credentials, or expired ones
    RequestException,
    OSError,  # includes TimeoutError from waiting on a job
)
"""What the client raises when the warehouse cannot be reached or will not let us in."""


class WarehouseUnavailable(Exception):
    """The warehouse did not answer; ``detail`` names it and says what to check."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def describe_warehouse(settings: WarehouseSettings) -> str:
    """The warehouse in words, as messages, logs and the dashboard name it."""
    if settings.uses_bigquery_emulator:
        return f"BigQuery emulator at {settings.bigquery_emulator_url}"
    return f"BigQuery project {settings.gcp_project}"


def warehouse_unavailable(
    settings: WarehouseSettings, error: BaseException
) -> WarehouseUnavailable:
    """A WarehouseUnavailable for ``error`` that says which warehouse to check and how."""
    # A retry that ran out names its last failure; a refused connection's own text is a long
    # urllib3 repr that says no more than its type.
    root = error.cause if isinstance(error, RetryError) and error.cause else error
    reason = type(root).__name__
    if not isinstance(root, (RequestException, OSError)):
        lines = str(root).strip().splitlines()
        reason += f": {lines[0][:160]}" if lines else ""
    if settings.uses_bigquery_emulator:
        advice = (
            "start it (`make run` starts it, or `python -m deploy.local.stack bigquery`) or set "
            "COINSTREAM_BIGQUERY_EMULATOR_URL to where it listens"
        )
    else:
        advice = (
            "check COINSTREAM_GCP_PROJECT and your credentials "
            "(`gcloud auth application-default login`)"
        )
    return WarehouseUnavailable(
        f"the warehouse ({describe_warehouse(settings)}) did not answer ({reason}); {advice}"
    )
