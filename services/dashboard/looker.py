"""A Looker Studio Linking API URL that opens a report on the coinstream views (`coinstream
looker-url`, which `make looker-url` runs).

The Linking API (``https://lookerstudio.google.com/reporting/create?...``) builds a report from
URL parameters: ``c.reportId`` picks a template report to copy (none: a blank report), and each
``ds.<alias>.*`` group adds a BigQuery data source (``connector=bigQuery``, ``type=TABLE``,
``projectId``, ``datasetId``, ``tableId``). Nothing is created until the user saves the report
in Looker Studio, which runs in the browser with the user's own Google account.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from shared.settings import DashboardServiceSettings

LINKING_API_URL = "https://lookerstudio.google.com/reporting/create"
REPORT_NAME = "coinstream"

LOOKER_VIEWS: tuple[tuple[str, str], ...] = (
    ("assets_hourly", "coinstream assets, hourly"),
    ("exchanges_hourly", "coinstream exchanges, hourly"),
    ("assets_latest", "coinstream assets, latest"),
    ("exchanges_latest", "coinstream exchanges, latest"),
)
"""The views a report starts with, and the data source name each gets: hourly views for
charts over time (small, bounded to 90 days), latest views for tables and scorecards."""


def looker_studio_url(
    project: str,
    dataset: str,
    views: Sequence[tuple[str, str]] = LOOKER_VIEWS,
    template_report_id: str | None = None,
    report_name: str = REPORT_NAME,
) -> str:
    """The Linking API URL for a report with one BigQuery data source per view.

    Data source aliases are ``ds0``, ``ds1``, ...; a template report's data sources must use
    the same aliases for the views to replace them.
    """
    if not project or not dataset:
        raise ValueError("a Looker Studio link needs a BigQuery project and dataset")
    parameters: list[tuple[str, str]] = []
    if template_report_id:
        parameters.append(("c.reportId", template_report_id))
    else:
        # A blank report opens in edit mode, ready for the first chart.
        parameters.append(("c.mode", "edit"))
    parameters.append(("r.reportName", report_name))
    for index, (view, source_name) in enumerate(views):
        alias = f"ds.ds{index}"
        parameters += [
            (f"{alias}.connector", "bigQuery"),
            (f"{alias}.type", "TABLE"),
            (f"{alias}.projectId", project),
            (f"{alias}.datasetId", dataset),
            (f"{alias}.tableId", view),
            (f"{alias}.datasourceName", source_name),
        ]
    return f"{LINKING_API_URL}?{urlencode(parameters)}"


class LookerUnavailable(Exception):
    """The settings point at no warehouse Looker Studio can read."""


def url_for_settings(settings: DashboardServiceSettings, project: str | None = None) -> str:
    """The link for the configured project and dataset; the emulator is out of Looker's reach."""
    chosen = project or settings.gcp_project
    if not chosen:
        raise LookerUnavailable(
            "Looker Studio reads real BigQuery only, and COINSTREAM_GCP_PROJECT is unset (the "
            "warehouse is the local emulator); set it to the project the stream worker writes "
            "to, or pass --project, and retry"
        )
    return looker_studio_url(
        chosen,
        settings.bigquery_dataset,
        template_report_id=settings.looker_template_report_id,
    )
