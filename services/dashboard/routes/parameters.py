"""Query parameters the data routes share: the time range, the ids, and the bounds.

Each is validated here, once, so a query function only ever sees a range of at most
MAX_RANGE, at most MAX_IDS ids and bounded point and row counts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Path, Query
from fastapi.exceptions import RequestValidationError

from services.dashboard.queries import TimeRange

DEFAULT_RANGE = timedelta(hours=1)
MAX_RANGE = timedelta(days=366)
MAX_IDS = 20
ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


def time_range(
    since: Annotated[
        datetime | None,
        Query(
            description="Start of the range (ISO 8601; UTC if no offset). Default: an hour "
            "before `until`."
        ),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="End of the range (ISO 8601). Default: now.")
    ] = None,
) -> TimeRange:
    end = _utc(until) if until else datetime.now(UTC)
    start = _utc(since) if since else end - DEFAULT_RANGE
    if start >= end:
        raise _invalid("since", "must be before until")
    if end - start > MAX_RANGE:
        raise _invalid("since", f"the range may span at most {MAX_RANGE.days} days")
    return TimeRange(since=start, until=end)


def id_list(
    ids: Annotated[
        str,
        Query(
            description=f"Comma-separated ids (at most {MAX_IDS}), e.g. `bitcoin,ethereum`.",
            min_length=1,
            max_length=2000,
        ),
    ],
) -> list[str]:
    chosen = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
    if not chosen:
        raise _invalid("ids", "name at least one id")
    if len(chosen) > MAX_IDS:
        raise _invalid("ids", f"at most {MAX_IDS} ids at once")
    bad = [value for value in chosen if not ID_PATTERN.match(value)]
    if bad:
        raise _invalid("ids", f"{bad[0]!r} is not an id (letters, digits, '.', '_', '-')")
    return chosen


def one_id(
    key: Annotated[
        str,
        Path(
            description="One id, e.g. `bitcoin`.",
            pattern=ID_PATTERN.pattern,
            examples=["bitcoin"],
        ),
    ],
) -> str:
    return key


TimeRangeDep = Annotated[TimeRange, Depends(time_range)]
IdDep = Annotated[str, Depends(one_id)]
IdsDep = Annotated[list[str], Depends(id_list)]
PointsQuery = Annotated[
    int,
    Query(
        ge=2,
        le=1000,
        description="Most points per series; longer ranges keep one snapshot per bucket.",
    ),
]
LimitQuery = Annotated[int, Query(ge=1, le=2000, description="Most rows to return.")]
