"""The dashboard's own settings: the Looker Studio report its link copies."""

from __future__ import annotations

from pydantic import Field

from shared.settings.common import CommonSettings


class DashboardSettings(CommonSettings):
    """The Looker Studio report the dashboard's link copies."""

    looker_template_report_id: str | None = Field(
        default=None,
        description="Looker Studio report to copy when `make looker-url` builds its link "
        "(`c.reportId`). Unset: a blank report with the coinstream views as its "
        "data sources.",
    )
