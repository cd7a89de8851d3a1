"""The two ingestors: the same loop configured with an endpoint, a key field and a topic."""

from __future__ import annotations

from dataclasses import dataclass

from shared.coincap.client import Endpoint
from shared.settings import IngestorSettings


@dataclass(frozen=True)
class IngestorSpec:
    """What makes one ingestor differ from the other."""

    name: str
    """Service name, e.g. ``asset-ingestor``; also the metrics label."""
    endpoint: Endpoint
    key_field: str
    """The CoinCap field that identifies a record and keys its Kafka message."""
    topic: str


def ingestor_spec(settings: IngestorSettings, endpoint: Endpoint) -> tuple[IngestorSpec, int]:
    """The ingestor of one CoinCap listing, and the port its HTTP face listens on."""
    if endpoint == "assets":
        spec = IngestorSpec("asset-ingestor", "assets", "id", settings.topic_assets)
        return spec, settings.asset_ingestor_port
    spec = IngestorSpec("exchange-ingestor", "exchanges", "exchangeId", settings.topic_exchanges)
    return spec, settings.exchange_ingestor_port
