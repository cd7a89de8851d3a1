"""``/api/<entity>/latest``, ``/api/<entity>/series`` and, for an entity with backfilled
history, ``/api/<entity>/{key}/history``, made once per entity description.

For the assets: ``/api/assets/latest`` (every asset's newest snapshot), ``/api/assets/series``
(chosen assets over time) and ``/api/assets/bitcoin/history`` (one asset's history before its
snapshots); the same for the exchanges, which have no history.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.dashboard import queries
from services.dashboard.dependencies import ClientDep, SettingsDep
from services.dashboard.entities import Entity
from services.dashboard.errors import error_responses
from services.dashboard.models import entity_models
from services.dashboard.routes.parameters import (
    IdDep,
    IdsDep,
    LimitQuery,
    PointsQuery,
    TimeRangeDep,
)


def entity_router(entity: Entity) -> APIRouter:
    """The two routes of ``entity``, named ``<entity>_latest`` and ``<entity>_series`` (the
    OpenAPI operation ids)."""
    models = entity_models(entity)
    router = APIRouter(prefix=f"/api/{entity.name}", tags=[entity.name])

    def latest(
        client: ClientDep, settings: SettingsDep, time_range: TimeRangeDep, limit: LimitQuery = 500
    ) -> BaseModel:
        rows = queries.latest(client, settings, entity, time_range, limit)
        return models.latest(since=time_range.since, until=time_range.until, **{entity.name: rows})

    def series(
        client: ClientDep,
        settings: SettingsDep,
        ids: IdsDep,
        time_range: TimeRangeDep,
        points: PointsQuery = 240,
    ) -> BaseModel:
        return models.series_answer(
            since=time_range.since,
            until=time_range.until,
            bucket_seconds=time_range.bucket_seconds(points),
            series=queries.series(client, settings, entity, ids, time_range, points),
        )

    router.add_api_route(
        "/latest",
        latest,
        methods=["GET"],
        name=f"{entity.name}_latest",
        summary=f"Each {entity.noun}'s newest snapshot in the range, by rank",
        description=entity.latest_description,
        response_model=models.latest,
        responses=error_responses(422, 503),
    )
    router.add_api_route(
        "/series",
        series,
        methods=["GET"],
        name=f"{entity.name}_series",
        summary=f"{entity.series_in_words} of chosen {entity.name} over time",
        description=f"One series per {entity.noun} found, in the order asked; each point is the "
        "last snapshot of its time bucket (`bucket_seconds`).",
        response_model=models.series_answer,
        responses=error_responses(422, 503),
    )
    if entity.history is not None:
        history_model = models.history

        def history(
            client: ClientDep,
            settings: SettingsDep,
            key: IdDep,
            time_range: TimeRangeDep,
            points: PointsQuery = 500,
        ) -> BaseModel:
            return queries.history(client, settings, entity, key, time_range, points)

        router.add_api_route(
            "/{key}/history",
            history,
            methods=["GET"],
            name=f"{entity.name}_history",
            summary=f"One {entity.noun}'s backfilled history, before its first snapshot",
            description=f"The `{entity.history.table}` rows of one {entity.noun} in the range "
            "and before `live_since`, its first snapshot there (where live data begins), one "
            "point per time bucket. Empty until `coinstream backfill` has written history.",
            response_model=history_model,
            responses=error_responses(422, 503),
        )
    return router
