"""One backfill, start to end: plan, ask, then fetch window by window into Kafka.

Nothing is spent before ``confirm`` says yes. Each window is one CoinCap request; its points go
to the history topic in the ingestors' envelope (``source_timestamp`` is the point's own time,
so the stream worker's MERGE looks for copies in the days the points belong to), Kafka
acknowledges them all, and only then does the ledger note the window done. A spent quota, a
429 storm that outlasts the retries or an unreachable Kafka stops the run cleanly: what is done
stays done, and the summary says why it stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.backfill.ledger import Ledger
from services.backfill.plan import (
    BackfillPlan,
    Window,
    build_plan,
    estimate_credits,
    last_complete_point_ms,
)
from shared.coincap import CoinCapClient, CoinCapError
from shared.coincap.history import HistoryInterval, point_time_error
from shared.envelope import (
    OutgoingMessage,
    PollContext,
    dead_letter_message,
    record_or_dead_letter,
)
from shared.kafka import create_producer, ensure_topics, pipeline_topics
from shared.settings import CoinCapKafkaSettings

KAFKA_DELIVERY_SECONDS = 30.0


class BackfillRequestError(ValueError):
    """The request itself is wrong (no assets, an empty range); nothing was spent."""


@dataclass(frozen=True)
class BackfillRequest:
    """What to backfill: the top ``top`` assets by rank, or ``ids``; a range; an interval."""

    start: datetime
    end: datetime
    interval: HistoryInterval
    top: int | None = None
    ids: tuple[str, ...] = ()

    def check(self) -> None:
        if (self.top is None) == (not self.ids):
            raise BackfillRequestError("give either a number of top assets or asset ids")
        if self.top is not None and self.top < 1:
            raise BackfillRequestError(f"the number of top assets must be 1 or more, got {self}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise BackfillRequestError("start and end must carry a time zone (UTC)")
        if self.start >= self.end:
            raise BackfillRequestError(
                f"start ({self.start.isoformat()}) must be before end ({self.end.isoformat()})"
            )


@dataclass(frozen=True)
class BackfillProgress:
    """How far a run is, after each window."""

    assets_total: int
    assets_done: int
    windows_total: int
    windows_done: int
    records: int
    credits: float


@dataclass
class BackfillSummary:
    """What a run did. ``outcome``: finished, nothing-to-do, cancelled (the answer was no) or
    stopped (``stopped_by`` says why; run the same request again to go on)."""

    plan: BackfillPlan
    outcome: Literal["finished", "nothing-to-do", "cancelled", "stopped"] = "finished"
    windows_fetched: int = 0
    records: int = 0
    invalid_records: int = 0
    """Points without a ``time`` the table can hold (none, not a whole number, outside
    BigQuery's TIMESTAMP range), or that cannot be a Kafka message as received (too large, text
    UTF-8 cannot hold): sent to the dead-letter topic with the reason, not to history."""
    credits_spent: float = 0.0
    seconds: float = 0.0
    stopped_by: str | None = None
    assets_done: list[str] = field(default_factory=list)


ConfirmCallback = Callable[[BackfillPlan], bool]
ProgressCallback = Callable[[BackfillProgress], None]


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def plan_backfill(
    request: BackfillRequest,
    settings: CoinCapKafkaSettings,
    ledger: Ledger,
    now_ms: int | None = None,
) -> BackfillPlan:
    """The windows still missing and their cost. Until the top assets are listed their ranks
    stand in for their ids (``#1``, ``#2``...), with nothing done: an upper bound."""
    request.check()
    now_ms = round(time.time() * 1000) if now_ms is None else now_ms
    end_ms = min(_ms(request.end), last_complete_point_ms(request.interval, now_ms))
    listing_requests = 0
    if request.ids:
        asset_ids = list(request.ids)
    else:
        assert request.top is not None
        kept = ledger.ranking(request.top)
        if kept is None:
            listing_requests = 1
            asset_ids = [f"#{rank}" for rank in range(1, request.top + 1)]
        else:
            asset_ids = kept[: request.top]
    return build_plan(
        asset_ids,
        request.interval,
        _ms(request.start),
        end_ms,
        max_points_per_window=settings.backfill_max_points_per_window,
        done={} if listing_requests else ledger.finished(),
        listing_requests=listing_requests,
        credits_per_call=settings.coincap_credits_per_call,
        monthly_credits=settings.coincap_monthly_credits,
    )


def history_messages(
    settings: CoinCapKafkaSettings, window: Window, points: list[Any], fetched_at_ms: int
) -> tuple[list[OutgoingMessage], int]:
    """The history topic's messages for a window's points, and how many went to dead letters.

    Each record is the point as CoinCap sent it plus ``id`` and ``interval``, keyed by the
    asset so one asset's points keep one partition. A point whose ``time`` the table cannot
    hold, or that cannot be a Kafka message, goes to the dead-letter topic with the reason.
    """
    source = "coincap-simulator" if settings.uses_coincap_simulator else "coincap"
    poll_id = f"backfill:{window.asset_id}:{window.interval}:{window.start_ms}"
    messages, invalid = [], 0
    for point in points:
        reason = point_time_error(point)
        context = PollContext(
            poll_id=poll_id,
            endpoint="history",
            source=source,
            source_timestamp_ms=point["time"] if reason is None else fetched_at_ms,
            fetched_at_ms=fetched_at_ms,
        )
        if reason is None:
            record = {**point, "id": window.asset_id, "interval": window.interval}
            message, reason = record_or_dead_letter(
                context, settings.topic_history, settings.topic_deadletter, window.asset_id, record
            )
        else:
            message = dead_letter_message(
                context, settings.topic_deadletter, window.asset_id, point, reason
            )
        invalid += reason is not None
        messages.append(message)
    return messages, invalid


async def _deliver(producer: AIOKafkaProducer, messages: list[OutgoingMessage]) -> None:
    """Send every message and wait until Kafka has acknowledged them all."""
    pending = [
        await producer.send(message.topic, value=message.value, key=message.key)
        for message in messages
    ]
    async with asyncio.timeout(KAFKA_DELIVERY_SECONDS):
        await asyncio.gather(*pending)


async def _start_producer(settings: CoinCapKafkaSettings) -> AIOKafkaProducer:
    wanted = {settings.topic_history, settings.topic_deadletter}
    await ensure_topics(
        settings, [topic for topic in pipeline_topics(settings) if topic.name in wanted]
    )
    producer = create_producer(settings, client_id="coinstream-backfill")
    await producer.start()
    return producer


def _rank(record: dict[str, Any]) -> int:
    """CoinCap's rank (a string or a number); an unreadable one ranks last."""
    try:
        return int(str(record.get("rank")))
    except ValueError:
        return sys.maxsize


async def _top_asset_ids(client: CoinCapClient, ledger: Ledger, top: int) -> tuple[list[str], int]:
    """The ``top`` asset ids by rank from CoinCap, kept in the ledger; and the requests made."""
    listing = await client.fetch_all("assets")
    ranked = sorted(
        (record for record in listing.records if isinstance(record, dict) and "id" in record),
        key=_rank,
    )
    ids = [str(record["id"]) for record in ranked]
    ledger.keep_ranking(ids)
    return ids[:top], listing.requests


async def backfill(
    request: BackfillRequest,
    settings: CoinCapKafkaSettings,
    confirm: ConfirmCallback,
    progress: ProgressCallback | None = None,
    *,
    client: CoinCapClient | None = None,
) -> BackfillSummary:
    """Plan ``request``, ask ``confirm``, then fetch what is missing into the history topic.

    Raises ``BackfillRequestError`` for a wrong request and ``BackfillAlreadyRunning`` when
    another run holds the ledger; CoinCap and Kafka failures end the run as ``stopped``.
    """
    started = time.monotonic()
    with Ledger(settings.state_dir / "backfill") as ledger:
        plan = plan_backfill(request, settings, ledger)
        summary = BackfillSummary(plan)
        if plan.estimate.requests == 0:
            summary.outcome = "nothing-to-do"
            return summary
        if not confirm(plan):
            summary.outcome = "cancelled"
            return summary
        coincap = client or CoinCapClient.from_settings(settings)
        try:
            await _run(request, settings, ledger, coincap, summary, progress)
        finally:
            if client is None:
                await coincap.aclose()
            summary.seconds = time.monotonic() - started
    return summary


async def _run(
    request: BackfillRequest,
    settings: CoinCapKafkaSettings,
    ledger: Ledger,
    client: CoinCapClient,
    summary: BackfillSummary,
    progress: ProgressCallback | None,
) -> None:
    producer: AIOKafkaProducer | None = None
    try:
        producer = await _start_producer(settings)
        if summary.plan.listing_requests:
            assert request.top is not None
            ids, requests = await _top_asset_ids(client, ledger, request.top)
            summary.credits_spent += requests * settings.coincap_credits_per_call
            listed = dataclasses.replace(request, top=None, ids=tuple(ids))
            replanned = plan_backfill(listed, settings, ledger)
            # The plan of the listed assets, still counting the listing it took.
            summary.plan = dataclasses.replace(
                replanned,
                listing_requests=requests,
                estimate=estimate_credits(
                    replanned.estimate.requests + requests,
                    settings.coincap_credits_per_call,
                    settings.coincap_monthly_credits,
                ),
            )
        await _fetch_windows(settings, ledger, client, producer, summary, progress)
    except CoinCapError as error:
        summary.outcome, summary.stopped_by = "stopped", str(error)
    except (KafkaError, TimeoutError, OSError) as error:
        summary.outcome = "stopped"
        summary.stopped_by = (
            f"Kafka at {settings.kafka_bootstrap_servers} did not take the points "
            f"({type(error).__name__}: {error}); check that it runs, then run the same "
            "backfill again"
        )
    finally:
        if producer is not None:
            await producer.stop()


async def _fetch_windows(
    settings: CoinCapKafkaSettings,
    ledger: Ledger,
    client: CoinCapClient,
    producer: AIOKafkaProducer,
    summary: BackfillSummary,
    progress: ProgressCallback | None,
) -> None:
    plan = summary.plan
    remaining = {window.asset_id for window in plan.windows}
    assets_done = len(plan.asset_ids) - len(remaining)
    left_in_asset = {asset_id: 0 for asset_id in remaining}
    for window in plan.windows:
        left_in_asset[window.asset_id] += 1
    for window in plan.windows:
        fetched = await client.fetch_history(
            window.asset_id, window.interval, window.start_ms, window.end_ms
        )
        summary.credits_spent += fetched.requests * settings.coincap_credits_per_call
        messages, invalid = history_messages(
            settings, window, fetched.records, round(time.time() * 1000)
        )
        await _deliver(producer, messages)
        ledger.record(window, len(messages) - invalid)
        summary.windows_fetched += 1
        summary.records += len(messages) - invalid
        summary.invalid_records += invalid
        left_in_asset[window.asset_id] -= 1
        if left_in_asset[window.asset_id] == 0:
            assets_done += 1
            summary.assets_done.append(window.asset_id)
        if progress is not None:
            progress(
                BackfillProgress(
                    assets_total=len(plan.asset_ids),
                    assets_done=assets_done,
                    windows_total=len(plan.windows),
                    windows_done=summary.windows_fetched,
                    records=summary.records,
                    credits=summary.credits_spent,
                )
            )
