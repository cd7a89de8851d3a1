"""``python -m services.ingestor assets|exchanges``: one poll loop, run once per CoinCap listing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from services.ingestor.app import run_ingestor
from services.ingestor.specs import ingestor_spec
from shared.settings import IngestorSettings, load_settings_or_exit


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.ingestor",
        description="Poll one CoinCap listing into its Kafka topic until SIGTERM or Ctrl-C.",
    )
    parser.add_argument(
        "listing",
        choices=["assets", "exchanges"],
        help="assets runs the asset-ingestor, exchanges the exchange-ingestor",
    )
    arguments = parser.parse_args(argv)
    settings = load_settings_or_exit(IngestorSettings)
    spec, port = ingestor_spec(settings, arguments.listing)
    run_ingestor(spec, settings, port=port)


if __name__ == "__main__":
    main()
