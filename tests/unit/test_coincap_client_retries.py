"""The CoinCap client's retries against our real simulator, served in-process: 429s with and
without ``Retry-After``, a spent quota, server errors, slow answers and refused connections.
Waits go to a recorder, so ``Retry-After`` is checked without spending the time."""

from __future__ import annotations

import socket

import pytest

from shared.coincap import (
    CoinCapClient,
    CoinCapUnavailable,
    QuotaExhausted,
)
from tests.harness.coincap_client import (
    ASSET_COUNT,
    ResponseRecorder,
    SleepRecorder,
    add_fault,
    client_for,
    simulator,
)


async def test_rate_limit_is_retried_after_retry_after_seconds() -> None:
    app = simulator()
    await add_fault(app, mode="rate_limit", count=2, retry_after=1)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep) as client:
        result = await client.fetch_all("assets")

    assert len(result.records) == ASSET_COUNT
    assert sleep.waits == [1.0, 1.0]
    assert observer.statuses[:3] == [429, 429, 200]
    assert result.requests == observer.statuses.count(200)


async def test_rate_limit_without_retry_after_backs_off_within_bounds() -> None:
    app = simulator()
    await add_fault(app, mode="rate_limit", count=2)
    sleep = SleepRecorder()
    async with client_for(app, sleep=sleep) as client:
        await client.fetch_all("exchanges")
    assert len(sleep.waits) == 2
    assert all(0 < wait <= 0.01 for wait in sleep.waits)


async def test_persistent_429_raises_quota_exhausted_after_the_retries() -> None:
    app = simulator()
    await add_fault(app, mode="quota_exhausted", retry_after=2)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep, max_retries=3) as client:
        with pytest.raises(QuotaExhausted) as caught:
            await client.fetch_all("assets")

    assert caught.value.retry_after_seconds == 2.0
    assert caught.value.attempts == 4
    assert observer.statuses == [429] * 4
    assert sleep.waits == [2.0] * 3


async def test_quota_exhausted_without_retry_after_carries_none() -> None:
    app = simulator()
    await add_fault(app, mode="quota_exhausted")
    async with client_for(app, max_retries=1) as client:
        with pytest.raises(QuotaExhausted) as caught:
            await client.fetch_all("exchanges")
    assert caught.value.retry_after_seconds is None


async def test_a_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    app = simulator()
    await add_fault(app, mode="quota_exhausted", retry_after=3600)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep) as client:
        with pytest.raises(QuotaExhausted) as caught:
            await client.fetch_all("assets")
    assert caught.value.retry_after_seconds == 3600
    assert observer.statuses == [429]
    assert sleep.waits == []


async def test_server_errors_are_retried_then_succeed() -> None:
    app = simulator()
    await add_fault(app, mode="server_error", count=2, status=503)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep) as client:
        result = await client.fetch_all("exchanges")
    assert len(result.records) == 40
    assert observer.statuses[:3] == [503, 503, 200]
    assert len(sleep.waits) == 2


async def test_persistent_server_errors_raise_unavailable() -> None:
    app = simulator()
    await add_fault(app, mode="server_error", count=None)
    observer = ResponseRecorder()
    async with client_for(app, on_response=observer, max_retries=2) as client:
        with pytest.raises(CoinCapUnavailable, match="HTTP 500") as caught:
            await client.fetch_all("assets")
    assert caught.value.attempts == 3
    assert observer.statuses == [500, 500, 500]


async def test_a_slow_answer_times_out_and_is_retried() -> None:
    app = simulator()
    await add_fault(app, mode="slow", seconds=5, count=1)
    observer = ResponseRecorder()
    async with client_for(app, on_response=observer, timeout_seconds=0.05) as client:
        result = await client.fetch_all("exchanges")
    assert len(result.records) == 40
    assert observer.statuses[:2] == ["error", 200]


async def test_connection_errors_raise_unavailable_after_the_retries() -> None:
    with socket.socket() as probe:  # a port nothing listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    client = CoinCapClient(
        f"http://127.0.0.1:{port}/v3",
        max_retries=2,
        on_response=observer,
        sleep=sleep,
        backoff_initial_seconds=0.001,
    )
    async with client:
        with pytest.raises(CoinCapUnavailable, match="ConnectError") as caught:
            await client.fetch_all("assets")
    assert caught.value.attempts == 3
    assert observer.statuses == ["error"] * 3
    assert len(sleep.waits) == 2
