"""``python -m services.dashboard``: the web dashboard on ``COINSTREAM_DASHBOARD_PORT``."""

from __future__ import annotations

import logging
import sys

import uvicorn

from services.dashboard.app import MissingAssets, create_app
from shared.logging import configure_logging
from shared.settings import DashboardServiceSettings, load_settings_or_exit
from shared.warehouse import dataset_id, describe_warehouse

logger = logging.getLogger("services.dashboard")


def main() -> None:
    settings = load_settings_or_exit(DashboardServiceSettings)
    configure_logging("dashboard", settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except MissingAssets as error:
        print(f"coinstream: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logger.info(
        "dashboard at http://%s:%d reading the %s, dataset %s%s",
        settings.bind_host,
        settings.dashboard_port,
        describe_warehouse(settings),
        dataset_id(settings),
        " (data is SIMULATED)" if settings.uses_coincap_simulator else "",
    )
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=settings.dashboard_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
