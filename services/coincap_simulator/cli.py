"""The simulator's command line::

    python -m services.coincap_simulator [--port 8090] [--api-key KEY] [--tick-seconds 1.0]
        [--seed N] [--fault '{"mode": "rate_limit", "count": 2, "retry_after": 1}'] ...
        [--log-level INFO] [--access-log]

It logs one line saying the data is SIMULATED, one per fault knob added or cleared, and
uvicorn's start and stop; every request only with ``--access-log``.
"""

from __future__ import annotations

import argparse
import logging
import secrets
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from services.coincap_simulator.app import create_app
from services.coincap_simulator.faults import Fault
from shared.logging import configure_logging
from shared.settings import CoinCapSettings, get_settings

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator as ``argv`` says, until Ctrl-C, logging as every service does."""
    settings = get_settings(CoinCapSettings)
    parser = argparse.ArgumentParser(
        prog="python -m services.coincap_simulator",
        description="Serve simulated CoinCap v3 market data locally (not real prices).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.coincap_simulator_port)
    parser.add_argument("--api-key", help="require this key, as CoinCap v3 does")
    parser.add_argument("--tick-seconds", type=float, default=1.0, help="how often prices move")
    parser.add_argument("--seed", type=int, help="random seed, to replay a market")
    parser.add_argument(
        "--fault",
        type=_fault_argument,
        action="append",
        default=[],
        help='a fault knob as JSON, e.g. \'{"mode": "quota_exhausted"}\' (repeatable)',
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=settings.log_level,
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every HTTP request (off: too chatty)"
    )
    args = parser.parse_args(argv)
    if args.tick_seconds <= 0:
        parser.error(f"--tick-seconds must be positive, got {args.tick_seconds}")

    configure_logging("coincap-simulator", args.log_level, settings.log_format)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    app = create_app(
        api_key=args.api_key, tick_seconds=args.tick_seconds, seed=seed, faults=args.fault
    )
    logger.info(
        "CoinCap simulator at http://%s:%d/v3 serving SIMULATED market data, not real prices "
        "(tick %g s, seed %d, API key %s, %d fault knob(s))",
        args.host,
        args.port,
        args.tick_seconds,
        seed,
        "required" if args.api_key else "not required",
        len(args.fault),
    )
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=args.access_log)


def _fault_argument(text: str) -> Fault:
    try:
        return Fault.model_validate_json(text)
    except ValidationError as error:
        raise argparse.ArgumentTypeError(
            f"not a fault knob: {text!r} ({error.error_count()} problem(s): "
            f"{'; '.join(detail['msg'] for detail in error.errors())}); "
            'example: {"mode": "rate_limit", "count": 2, "retry_after": 1}'
        ) from None
