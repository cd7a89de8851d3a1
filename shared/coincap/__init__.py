"""CoinCap v3 access: the client, record validation, errors, and a local simulator.

The public names are re-exported here so that callers write ``from shared.coincap import ...``.
The simulator is not imported here: it pulls in FastAPI and uvicorn, which ingestors do not need.
"""

from shared.coincap.client import CoinCapClient, Endpoint, FetchResult, ResponseObserver
from shared.coincap.errors import (
    BadApiKey,
    CoinCapError,
    CoinCapUnavailable,
    MalformedResponse,
    QuotaExhausted,
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
    "RetiredApiVersion",
    "UnexpectedStatus",
    "validation_error",
]
