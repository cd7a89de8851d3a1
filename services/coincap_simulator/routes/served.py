"""What the simulator served, so the fault suite can hold the warehouse against it.

    GET /_simulator/served?after=SEQ   the listing pages answered with 200 since page ``SEQ``:
                                       endpoint, the answer's ``timestamp`` and each record's id

Only /v3/assets and /v3/exchanges pages are kept (the records the ingestors stream). A page
answered after a ``slow`` knob is marked ``delayed``: its client may have timed out and asked
again, so its records may never reach Kafka and are not owed to the warehouse. A record an
``absurd_values`` knob altered is listed in ``absurd``, one a ``poison`` knob altered in
``poison``: it is owed to the dead-letter topic, not to the warehouse. A ``poison_page`` page is
not logged: the ingestors refuse it whole, so none of its records is owed. The log keeps the
last ``MAX_PAGES`` pages and says how many older ones it forgot, so a long run stays bounded.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from services.coincap_simulator.faults import RECORD_KEYS
from services.coincap_simulator.models import Endpoint

router = APIRouter(tags=["simulator"])

MAX_PAGES = 50_000
"""About 14 hours of both listings at one poll a second: more than any fault-suite run."""


class ServedPage(BaseModel):
    """One 200 answer of a listing: which records, stamped with which timestamp."""

    sequence: int = Field(description="1 for the first page served, then one more per page")
    endpoint: Endpoint
    timestamp: int = Field(description="the answer's timestamp, epoch milliseconds")
    ids: list[str | None] = Field(description="each record's id in order; null where it had none")
    delayed: bool = Field(description="answered after a `slow` knob's delay")
    absurd: list[str] = Field(
        default_factory=list,
        description="ids of the records an `absurd_values` knob gave an absurd value",
    )
    poison: list[str] = Field(
        default_factory=list,
        description="ids of the records a `poison` knob gave a poison value (an over-long id "
        "included, as served)",
    )


class ServedPages(BaseModel):
    """Pages after the asked-for sequence number, oldest first."""

    pages: list[ServedPage]
    forgotten: int = Field(description="pages dropped from the log's start to keep it bounded")


class ServedLog:
    """The last ``MAX_PAGES`` listing pages this simulator answered with 200."""

    def __init__(self) -> None:
        self._pages: deque[ServedPage] = deque(maxlen=MAX_PAGES)
        self._served = 0

    def record(
        self,
        endpoint: Endpoint,
        timestamp_ms: int,
        records: list[dict[str, Any]],
        delayed: bool,
        absurd: int = 0,
        poison: int = 0,
    ) -> None:
        """Note one page; its first ``absurd`` records carry an absurd value, its first
        ``poison`` records a poison value."""
        key = RECORD_KEYS[endpoint]
        self._served += 1
        ids = [None if (value := record.get(key)) is None else str(value) for record in records]
        self._pages.append(
            ServedPage(
                sequence=self._served,
                endpoint=endpoint,
                timestamp=timestamp_ms,
                ids=ids,
                delayed=delayed,
                absurd=[value for value in ids[:absurd] if value is not None],
                poison=[value for value in ids[:poison] if value is not None],
            )
        )

    def after(self, sequence: int) -> ServedPages:
        return ServedPages(
            pages=[page for page in self._pages if page.sequence > sequence],
            forgotten=self._served - len(self._pages),
        )


def served_log(app: FastAPI) -> ServedLog:
    """The app's log, made on first use (so assembling the app needs only the router)."""
    log: ServedLog | None = getattr(app.state, "served", None)
    if log is None:
        log = ServedLog()
        app.state.served = log
    return log


def record_served(
    request: Request,
    endpoint: Endpoint,
    timestamp_ms: int,
    records: list[dict[str, Any]],
    delayed: bool,
    absurd: int = 0,
    poison: int = 0,
) -> None:
    """Note a listing page answered with 200 (history points are not records we stream)."""
    if endpoint in ("assets", "exchanges"):
        served_log(request.app).record(endpoint, timestamp_ms, records, delayed, absurd, poison)


@router.get("/_simulator/served")
async def served(request: Request, after: int = 0) -> ServedPages:
    return served_log(request.app).after(after)
