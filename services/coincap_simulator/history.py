"""The simulated ``/assets/{id}/history``: each asset's past, the same every time it is asked.

Since the market started, a point is the price the market logged at that time
(``SimulatedMarket.logged_price``), so the last point is within a minute of the current price.
Before that, the past is made up, and made up the same way on every request: the log-price
wanders by a sum of smooth noise at periods from an hour to half a year, each octave's amplitude
growing with the square root of its period as a random walk's does (about 3 % a day), and it is
pinned to the market's starting price at the start. The noise comes from hashing
(asset, octave, knot), so a point depends only on its asset and its time: a backfill that
resumes gets the very points it would have got the first time. Stablecoins wander a hundredth
as much. Circulating supply shrinks into the past by 2 % a year.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from services.coincap_simulator.market import (
    HistoryAnchor,
    SimulatedMarket,
    decimal_text,
    price_places,
)
from shared.coincap.history import point_times

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
_YEAR_MS = 365 * _DAY_MS
_OCTAVE_PERIODS_MS = tuple(_HOUR_MS * 2**octave for octave in range(13))
_DAILY_VOLATILITY = 0.03
_STABLECOIN_DAMPING = 0.01
_SUPPLY_SHRINK_PER_YEAR = 0.02
_KNOT_SCALE = 2.0 / 2**64


def _knot(asset_id: str, octave: int, index: int) -> float:
    """A value in [-1, 1), fixed for (asset, octave, knot)."""
    digest = hashlib.blake2b(f"{asset_id}/{octave}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") * _KNOT_SCALE - 1.0


def _wander(asset_id: str, time_ms: int) -> float:
    """The made-up log-price offset of ``asset_id`` at ``time_ms``: smooth, multi-scale noise."""
    total = 0.0
    for octave, period in enumerate(_OCTAVE_PERIODS_MS):
        position, index = math.modf(time_ms / period)
        if position < 0:
            position, index = position + 1, index - 1
        blend = (1 - math.cos(math.pi * position)) / 2
        start = _knot(asset_id, octave, int(index))
        end = _knot(asset_id, octave, int(index) + 1)
        amplitude = _DAILY_VOLATILITY * math.sqrt(period / _DAY_MS)
        total += amplitude * (start + (end - start) * blend)
    return total


def _past_price(asset_id: str, anchor: HistoryAnchor, time_ms: int) -> Decimal:
    offset = _wander(asset_id, time_ms) - _wander(asset_id, anchor.started_at_ms)
    if anchor.stablecoin:
        offset *= _STABLECOIN_DAMPING
    with localcontext() as context:
        context.prec = 60
        return anchor.start_price * Decimal(math.exp(offset))


def _supply_at(anchor: HistoryAnchor, time_ms: int) -> Decimal:
    years_before = max(anchor.started_at_ms - time_ms, 0) / _YEAR_MS
    return anchor.supply * Decimal(max(1 - _SUPPLY_SHRINK_PER_YEAR * years_before, 0.5))


def _iso_date(time_ms: int) -> str:
    moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def history_points(
    market: SimulatedMarket, asset_id: str, interval_ms: int, start_ms: int, end_ms: int
) -> list[dict[str, Any]] | None:
    """The points of ``asset_id`` from ``start_ms`` to ``end_ms`` (no later than the market's
    current tick), as CoinCap sends them; None for an unknown asset."""
    anchor = market.history_anchor(asset_id)
    if anchor is None:
        return None
    points = []
    for time_ms in point_times(interval_ms, start_ms, min(end_ms, market.timestamp_ms)):
        price = market.logged_price(asset_id, time_ms)
        if price is None:
            price = _past_price(asset_id, anchor, time_ms)
        points.append(
            {
                "priceUsd": decimal_text(price, price_places(price)),
                "time": time_ms,
                "circulatingSupply": decimal_text(_supply_at(anchor, time_ms), 16),
                "date": _iso_date(time_ms),
            }
        )
    return points
