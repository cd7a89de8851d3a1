"""When an ingestor polls: the interval, the time the next poll is due, and the quota pause.

The interval is the one set in ``COINSTREAM_POLL_INTERVAL_SECONDS``, else the simulator's (it
spends no credits), else the shortest at which this ingestor's share of the monthly CoinCap
credits lasts the month; that last one grows when a poll turns out to take several calls.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

from services.ingestor import metrics
from services.ingestor.specs import IngestorSpec
from shared.settings import IngestorSettings

logger = logging.getLogger(__name__)

SECONDS_PER_MONTH = 30 * 24 * 3600
INGESTORS_SHARING_THE_BUDGET = 2
SIMULATOR_POLL_INTERVAL_SECONDS = 5.0


def poll_interval_for_budget(
    monthly_credits: float,
    credits_per_call: float,
    calls_per_poll: int,
    ingestors: int = INGESTORS_SHARING_THE_BUDGET,
) -> float:
    """The shortest interval at which this ingestor's share of the credits lasts the month."""
    credits_per_poll = credits_per_call * max(calls_per_poll, 1)
    polls_per_month = monthly_credits / ingestors / credits_per_poll
    return SECONDS_PER_MONTH / polls_per_month


class PollSchedule:
    """One ingestor's poll schedule. The first poll is due at once; each poll makes the next
    due one interval later, so pausing and resuming cannot overspend credits. While CoinCap
    says the quota is spent, no poll is due until the pause is over or a restart ends it.
    """

    def __init__(self, spec: IngestorSpec, settings: IngestorSettings) -> None:
        self.spec = spec
        self.settings = settings
        self._explicit_interval = settings.poll_interval_seconds
        self._next_poll_at = 0.0
        """``time.monotonic()`` at which the next poll is due."""
        self.quota_exhausted_until: datetime | None = None
        self.interval_seconds = self._interval_for(calls_per_poll=1, announce=True)

    def _interval_for(self, calls_per_poll: int, announce: bool) -> float:
        settings = self.settings
        budget_interval = poll_interval_for_budget(
            settings.coincap_monthly_credits, settings.coincap_credits_per_call, calls_per_poll
        )
        budget = (
            f"{settings.coincap_monthly_credits} credits a month shared by "
            f"{INGESTORS_SHARING_THE_BUDGET} ingestors, {calls_per_poll} call(s) per poll"
        )
        if self._explicit_interval is not None:
            interval = self._explicit_interval
            if not settings.uses_coincap_simulator and interval < budget_interval:
                logger.warning(
                    "COINSTREAM_POLL_INTERVAL_SECONDS=%g overruns the credit budget (%s): "
                    "the budget lasts at one poll every %.0f s",
                    interval,
                    budget,
                    budget_interval,
                )
            reason = "COINSTREAM_POLL_INTERVAL_SECONDS"
        elif settings.uses_coincap_simulator:
            interval, reason = SIMULATOR_POLL_INTERVAL_SECONDS, "the simulator spends no credits"
        else:
            interval, reason = budget_interval, f"credit budget: {budget}"
        metrics.POLL_INTERVAL.labels(self.spec.name).set(interval)
        if announce:
            logger.info(
                "%s polls /%s every %.1f s (%s), into topic %s%s",
                self.spec.name,
                self.spec.endpoint,
                interval,
                reason,
                self.spec.topic,
                "; data is SIMULATED" if settings.uses_coincap_simulator else "",
            )
        return interval

    def fit_to_calls_per_poll(self, calls_per_poll: int) -> None:
        """A poll took ``calls_per_poll`` calls: stretch a budget-derived interval to match."""
        if self._explicit_interval is not None or calls_per_poll <= 1:
            return
        interval = self._interval_for(calls_per_poll, announce=False)
        if not math.isclose(interval, self.interval_seconds):
            logger.info(
                "%s: a poll takes %d calls; interval now %.1f s",
                self.spec.name,
                calls_per_poll,
                interval,
            )
            self.interval_seconds = interval

    def seconds_until_due(self) -> float:
        """How long until the next poll is due; zero or less when it is due now."""
        return self._next_poll_at - time.monotonic()

    def start_interval(self) -> None:
        """A poll has just been made: the next is due one interval from now."""
        self._next_poll_at = time.monotonic() + self.interval_seconds

    def pause_for_quota(self, retry_after_seconds: float | None) -> None:
        """CoinCap says the quota is spent: poll nothing for as long as it asks (or, when it
        does not say, for ``COINSTREAM_QUOTA_PAUSE_SECONDS``), but never longer than
        ``COINSTREAM_QUOTA_PAUSE_MAX_SECONDS``: a ``Retry-After`` of 1e12 would otherwise end
        beyond the last date a ``datetime`` holds, and the poll loop with it."""
        asked = retry_after_seconds or self.settings.quota_pause_seconds
        pause = min(asked, self.settings.quota_pause_max_seconds)
        if pause < asked:
            logger.warning(
                "%s: CoinCap asks for a pause of %g s; pausing for "
                "COINSTREAM_QUOTA_PAUSE_MAX_SECONDS (%g s), then asking again",
                self.spec.name,
                asked,
                pause,
            )
        self.quota_exhausted_until = datetime.fromtimestamp(time.time() + pause, UTC)
        metrics.COINCAP_QUOTA_EXHAUSTED.labels(self.spec.name).set(1)
        logger.error(
            "%s: CoinCap quota exhausted; polling paused for %.0f s (until %s)",
            self.spec.name,
            pause,
            self.quota_exhausted_until.isoformat(),
        )

    def quota_pause_remaining(self) -> float:
        """Seconds left of the quota pause; zero once it is over (or when there is none)."""
        until = self.quota_exhausted_until
        if until is None:
            return 0.0
        remaining = (until - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            logger.info("%s: quota pause over; trying CoinCap again", self.spec.name)
            self._end_quota_pause()
            return 0.0
        return remaining

    def restart(self) -> None:
        """A restart command: no quota pause, and the next poll due at once."""
        self._end_quota_pause()
        self._next_poll_at = 0.0

    def _end_quota_pause(self) -> None:
        self.quota_exhausted_until = None
        metrics.COINCAP_QUOTA_EXHAUSTED.labels(self.spec.name).set(0)
