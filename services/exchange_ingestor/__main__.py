"""``python -m services.exchange_ingestor``: the shared poll loop, configured for /exchanges."""

from shared.ingest.poller import IngestorSpec
from shared.ingest.service import run_ingestor
from shared.settings import load_settings_or_exit


def main() -> None:
    settings = load_settings_or_exit()
    spec = IngestorSpec(
        name="exchange-ingestor",
        endpoint="exchanges",
        key_field="exchangeId",
        topic=settings.topic_exchanges,
    )
    run_ingestor(spec, settings, port=settings.exchange_ingestor_port)


if __name__ == "__main__":
    main()
