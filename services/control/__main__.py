"""``python -m services.control``: the control service on ``COINSTREAM_CONTROL_PORT``."""

from __future__ import annotations

import logging
import sys

import uvicorn

from services.control.app import create_app
from services.control.security import StartupRefused
from shared.logging import configure_logging
from shared.settings import ControlServiceSettings, load_settings_or_exit

logger = logging.getLogger("services.control")


def main() -> None:
    settings = load_settings_or_exit(ControlServiceSettings)
    configure_logging("control", settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except StartupRefused as refusal:
        print(f"coinstream: {refusal}", file=sys.stderr)
        raise SystemExit(2) from None
    if settings.control_api_token is None:
        logger.warning(
            "control API is OPEN: COINSTREAM_CONTROL_ALLOW_OPEN=true and no token, so anyone "
            "who can reach %s:%d (loopback only) can pause, stop and restart the pipeline",
            settings.bind_host,
            settings.control_port,
        )
    else:
        logger.info(
            "control API on %s:%d; commands need the bearer token in COINSTREAM_CONTROL_API_TOKEN",
            settings.bind_host,
            settings.control_port,
        )
    uvicorn.run(
        app, host=settings.bind_host, port=settings.control_port, log_config=None, access_log=False
    )


if __name__ == "__main__":
    main()
