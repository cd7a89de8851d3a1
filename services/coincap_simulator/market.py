"""The simulated market: CoinCap's assets and exchanges moving on a seeded random walk.

The market moves once per ``tick_seconds``, worked out when a request arrives: prices follow a
seeded random walk (stablecoins stay near 1), market cap is price x supply, assets are ranked by
market cap, exchange volumes wander with ``percentTotalVolume`` summing to 100, and ``timestamp``
is the tick's time. A tick that comes after a long idle spell moves the market once, by as much as
the missed ticks would have together. Names are real (``universe.json``); numbers are made up.

The market also logs its prices, at most once a minute, so that ``/assets/{id}/history`` can
answer for the time it has been running with the prices it really had (``history.py`` makes up
the time before it started).
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from pathlib import Path
from typing import Any

UNIVERSE_PATH = Path(__file__).with_name("universe.json")

# Enough precision for 36 decimal places on numbers up to 1e20 without rounding surprises.
_DECIMAL_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)

_PRICE_VOLATILITY_PER_TICK = 0.0005
_VOLUME_VOLATILITY_PER_TICK = 0.002
_STABLECOIN_NOISE_PER_TICK = 0.0002
_VWAP_WEIGHT_PER_TICK = 0.05
_PEG_PULL_PER_TICK = 0.05
_PRICE_LOG_SPACING_MS = 60_000
_PRICE_LOG_MAX_ENTRIES = 7 * 24 * 60
"""A week of minutes; older entries are dropped and history before them reads the oldest kept."""


def decimal_text(value: Decimal, places: int) -> str:
    """``value`` with exactly ``places`` decimals and never in exponent notation, as CoinCap."""
    with localcontext(_DECIMAL_CONTEXT):
        return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def price_places(price: Decimal) -> int:
    """Decimals that keep at least 20 significant digits, and never fewer than CoinCap's 16."""
    return max(16, 19 - price.adjusted())


@dataclass
class _Asset:
    id: str
    symbol: str
    name: str
    supply: Decimal
    max_supply: Decimal | None
    price: Decimal
    price_24h_ago: Decimal
    vwap: Decimal | None
    volume_24h: Decimal
    explorer: str | None
    stablecoin: bool

    @property
    def market_cap(self) -> Decimal:
        with localcontext(_DECIMAL_CONTEXT):
            return self.price * self.supply


@dataclass(frozen=True)
class HistoryAnchor:
    """Where an asset's made-up past meets the market: its price when the market started."""

    started_at_ms: int
    start_price: Decimal
    supply: Decimal
    stablecoin: bool


@dataclass
class _Exchange:
    exchange_id: str
    name: str
    volume: Decimal | None
    trading_pairs: int
    socket: bool | None
    exchange_url: str


class SimulatedMarket:
    """The simulated assets and exchanges, moved one tick at a time, rendered as CoinCap sends.

    ``assets`` and ``exchanges`` are the rendered records of the current tick, in rank order;
    they are rebuilt only when the market moves, so paging within a tick is consistent.
    """

    def __init__(
        self, universe: dict[str, Any], *, seed: int, tick_seconds: float, started_at: float
    ) -> None:
        if tick_seconds <= 0:
            raise ValueError(f"tick_seconds must be positive, got {tick_seconds}")
        self._random = random.Random(seed)
        self._tick_seconds = tick_seconds
        self._started_at = started_at
        self._tick = 0
        self._assets = [self._new_asset(item) for item in universe["assets"]]
        self._exchanges = [self._new_exchange(item) for item in universe["exchanges"]]
        self.assets: list[dict[str, Any]] = []
        self.exchanges: list[dict[str, Any]] = []
        self._anchors = {
            asset.id: HistoryAnchor(self.timestamp_ms, asset.price, asset.supply, asset.stablecoin)
            for asset in self._assets
        }
        self._price_log_times: list[int] = []
        self._price_log: list[dict[str, Decimal]] = []
        self._render()
        self._log_prices()

    @property
    def tick_seconds(self) -> float:
        """How often the market moves."""
        return self._tick_seconds

    @property
    def timestamp_ms(self) -> int:
        """When the current tick happened, in epoch milliseconds."""
        return round((self._started_at + self._tick * self._tick_seconds) * 1000)

    def advance_to(self, now: float) -> None:
        """Move the market to the tick that ``now`` (epoch seconds) falls in."""
        tick = math.floor((now - self._started_at) / self._tick_seconds)
        if tick <= self._tick:
            return
        self._step(ticks=tick - self._tick)
        self._tick = tick
        self._render()
        self._log_prices()

    def history_anchor(self, asset_id: str) -> HistoryAnchor | None:
        """The asset's price and supply when the market started; None for an unknown id."""
        return self._anchors.get(asset_id)

    def logged_price(self, asset_id: str, time_ms: int) -> Decimal | None:
        """The price the asset had at ``time_ms`` (the last logged minute at or before it);
        None before the market started. Fixed once the market has moved past ``time_ms``."""
        if time_ms < self._anchors[asset_id].started_at_ms:
            return None
        index = max(bisect_right(self._price_log_times, time_ms) - 1, 0)
        return self._price_log[index][asset_id]

    def _log_prices(self) -> None:
        now_ms = self.timestamp_ms
        if self._price_log_times and now_ms - self._price_log_times[-1] < _PRICE_LOG_SPACING_MS:
            return
        self._price_log_times.append(now_ms)
        self._price_log.append({asset.id: asset.price for asset in self._assets})
        if len(self._price_log) > _PRICE_LOG_MAX_ENTRIES:
            del self._price_log_times[0], self._price_log[0]

    def _new_asset(self, item: dict[str, Any]) -> _Asset:
        stablecoin = bool(item.get("stablecoin", False))
        # The universe's prices are round figures; a little jitter makes the first tick look real.
        price = Decimal(item["priceUsd"]) * (
            Decimal(1) if stablecoin else _random_factor(self._random, 0.01)
        )
        market_cap = price * Decimal(item["supply"])
        turnover = self._random.uniform(0.3, 1.5) if stablecoin else self._random.uniform(0.01, 0.2)
        asset = _Asset(
            id=item["id"],
            symbol=item["symbol"],
            name=item["name"],
            supply=Decimal(item["supply"]),
            max_supply=Decimal(item["maxSupply"]) if item["maxSupply"] is not None else None,
            price=price,
            price_24h_ago=price * _random_factor(self._random, 0.001 if stablecoin else 0.03),
            vwap=None if item.get("vwapUnknown") else price * _random_factor(self._random, 0.005),
            volume_24h=market_cap * Decimal(turnover),
            explorer=item["explorer"],
            stablecoin=stablecoin,
        )
        asset.price = asset.price.quantize(Decimal(1).scaleb(-price_places(asset.price)))
        return asset

    @staticmethod
    def _new_exchange(item: dict[str, Any]) -> _Exchange:
        volume = item["volumeUsd"]
        return _Exchange(
            exchange_id=item["exchangeId"],
            name=item["name"],
            volume=Decimal(volume) if volume is not None else None,
            trading_pairs=int(item["tradingPairs"]),
            socket=item["socket"],
            exchange_url=item["exchangeUrl"],
        )

    def _step(self, ticks: int) -> None:
        # n independent Gaussian steps add up to one step sqrt(n) times as wide.
        spread = math.sqrt(ticks)
        vwap_keep = (1 - _VWAP_WEIGHT_PER_TICK) ** min(ticks, 1000)
        peg_keep = (1 - _PEG_PULL_PER_TICK) ** min(ticks, 1000)
        # A pull towards the peg bounds the wander: n pulled steps spread this much, not sqrt(n).
        peg_spread = math.sqrt((1 - peg_keep**2) / (1 - (1 - _PEG_PULL_PER_TICK) ** 2))
        with localcontext(_DECIMAL_CONTEXT):
            for asset in self._assets:
                if asset.stablecoin:
                    # Pegged near 1: pulled back towards the peg, with a little noise.
                    deviation = (asset.price - 1) * Decimal(peg_keep) + Decimal(
                        self._random.gauss(0, _STABLECOIN_NOISE_PER_TICK * peg_spread)
                    )
                    price = 1 + deviation
                else:
                    price = asset.price * _random_factor(
                        self._random, _PRICE_VOLATILITY_PER_TICK * spread
                    )
                asset.price = price.quantize(Decimal(1).scaleb(-price_places(price)))
                asset.volume_24h *= _random_factor(
                    self._random, _VOLUME_VOLATILITY_PER_TICK * spread
                )
                if asset.vwap is not None:
                    asset.vwap = asset.vwap * Decimal(vwap_keep) + asset.price * Decimal(
                        1 - vwap_keep
                    )
            for exchange in self._exchanges:
                if exchange.volume is not None:
                    exchange.volume *= _random_factor(
                        self._random, _VOLUME_VOLATILITY_PER_TICK * spread
                    )

    def _render(self) -> None:
        with localcontext(_DECIMAL_CONTEXT):
            ranked_assets = sorted(self._assets, key=lambda asset: (-asset.market_cap, asset.id))
            self.assets = [
                self._asset_record(rank, asset) for rank, asset in enumerate(ranked_assets, 1)
            ]
            total_volume = sum(
                (exchange.volume for exchange in self._exchanges if exchange.volume is not None),
                Decimal(0),
            )
            # Exchanges without a volume rank last, as they would on CoinCap.
            ranked_exchanges = sorted(
                self._exchanges,
                key=lambda exchange: (
                    exchange.volume is None,
                    -(exchange.volume or 0),
                    exchange.exchange_id,
                ),
            )
            self.exchanges = [
                self._exchange_record(rank, exchange, total_volume)
                for rank, exchange in enumerate(ranked_exchanges, 1)
            ]

    def _asset_record(self, rank: int, asset: _Asset) -> dict[str, Any]:
        change_percent = (asset.price / asset.price_24h_ago - 1) * 100
        return {
            "id": asset.id,
            "rank": str(rank),
            "symbol": asset.symbol,
            "name": asset.name,
            "supply": decimal_text(asset.supply, 16),
            "maxSupply": (
                decimal_text(asset.max_supply, 16) if asset.max_supply is not None else None
            ),
            "marketCapUsd": decimal_text(asset.market_cap, 16),
            "volumeUsd24Hr": decimal_text(asset.volume_24h, 16),
            "priceUsd": decimal_text(asset.price, price_places(asset.price)),
            "changePercent24Hr": decimal_text(change_percent, 16),
            "vwap24Hr": (
                decimal_text(asset.vwap, price_places(asset.vwap))
                if asset.vwap is not None
                else None
            ),
            "explorer": asset.explorer,
            "tokens": {},
        }

    def _exchange_record(
        self, rank: int, exchange: _Exchange, total_volume: Decimal
    ) -> dict[str, Any]:
        percent = None
        if exchange.volume is not None and total_volume > 0:
            percent = decimal_text(exchange.volume / total_volume * 100, 36)
        return {
            "exchangeId": exchange.exchange_id,
            "name": exchange.name,
            "rank": str(rank),
            "percentTotalVolume": percent,
            "volumeUsd": (
                decimal_text(exchange.volume, 16) if exchange.volume is not None else None
            ),
            "tradingPairs": str(exchange.trading_pairs),
            "socket": exchange.socket,
            "exchangeUrl": exchange.exchange_url,
            "updated": self.timestamp_ms,
        }


def _random_factor(rng: random.Random, volatility: float) -> Decimal:
    """A log-normal factor around 1: one step of a geometric random walk."""
    return Decimal(math.exp(rng.gauss(0, volatility)))


def load_universe() -> dict[str, Any]:
    """The starting assets and exchanges (real names, rough plausible numbers)."""
    universe: dict[str, Any] = json.loads(UNIVERSE_PATH.read_text(encoding="utf-8"))
    return universe
