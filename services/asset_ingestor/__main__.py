"""``python -m services.asset_ingestor``: the shared poll loop, configured for /assets."""

from shared.ingest.poller import IngestorSpec
from shared.ingest.service import run_ingestor
from shared.settings import load_settings_or_exit


def main() -> None:
    settings = load_settings_or_exit()
    spec = IngestorSpec(
        name="asset-ingestor", endpoint="assets", key_field="id", topic=settings.topic_assets
    )
    run_ingestor(spec, settings, port=settings.asset_ingestor_port)


if __name__ == "__main__":
    main()
