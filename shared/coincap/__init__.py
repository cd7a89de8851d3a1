"""CoinCap v3 access: the client, record validation and errors.

The public names are re-exported here so that callers write ``from shared.coincap import ...``.
The simulator is a service of its own (`services/coincap_simulator`).
"""

from shared.coincap.client import CoinCapClient, Endpoint, FetchResult, ResponseObserver
from shared.coincap.errors import (
    BadApiKey,
    CoinCapError,
    CoinCapUnavailable,
    MalformedResponse,
    QuotaExhausted,
    ResponseTooLarge,
    RetiredApiVersion,
    UnexpectedStatus,
)
from shared.coincap.models import AssetRecord, ExchangeRecord, RecordKind, validation_error

__all__ = [
    "AssetRecord",
    "BadApiKey",
    "CoinCapClient",
    "CoinCapError",
    "CoinCapUnavailable",
    "Endpoint",
    "ExchangeRecord",
    "FetchResult",
    "MalformedResponse",
    "QuotaExhausted",
    "RecordKind",
    "ResponseObserver",
    "ResponseTooLarge",
    "RetiredApiVersion",
    "UnexpectedStatus",
    "validation_error",
]
