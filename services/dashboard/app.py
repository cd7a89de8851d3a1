"""The dashboard's FastAPI app: assembly only (page, static files, API routers, metrics, errors)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.dashboard.dependencies import DashboardResources
from services.dashboard.entities import ENTITIES
from services.dashboard.errors import install_error_handlers
from services.dashboard.routes import status
from services.dashboard.routes.entities import entity_router
from shared.metrics import metrics_endpoint
from shared.settings import DashboardServiceSettings

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"
CHART_LIBRARY = PACKAGE_DIR / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
"""Chart.js as npm installed it (`make setup` runs `npm ci` in this folder); served by us, so the
page needs no network beyond this service."""

DESCRIPTION = """\
The coinstream dashboard: a page (`/`) of charts and tables, and the JSON API it reads.

Every answer is read from the warehouse views (`assets_timeseries`, `exchanges_timeseries`)
and, for an asset's history before its first snapshot, the `asset_history` table that
`coinstream backfill` writes, bounded by a time range (`since`, `until`; at most 366 days), a
number of points per series and a number of rows. `/api/status` says whether the data is
simulated and how fresh it is; `/metrics` times the queries for Prometheus.

When the warehouse does not answer, data routes answer **503** with `{"detail": ...}` naming it
(the BigQuery emulator's URL, or the BigQuery project) and what to check.
"""


class MissingAssets(Exception):
    """The page's files are not in place; the message says how to install them."""


def check_assets() -> None:
    if not CHART_LIBRARY.is_file():
        raise MissingAssets(
            f"the chart library is missing ({CHART_LIBRARY.relative_to(PACKAGE_DIR.parent.parent)}"
            "); run `make setup` (it runs `npm ci` in services/dashboard, which needs npm and "
            "the npm registry once)"
        )


def create_app(settings: DashboardServiceSettings) -> FastAPI:
    """The dashboard for ``settings``; raises MissingAssets when the chart library is absent."""
    check_assets()
    app = FastAPI(
        title="coinstream dashboard",
        version="1",
        description=DESCRIPTION,
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.resources = DashboardResources(settings)
    app.include_router(status.router)
    for entity in ENTITIES:
        app.include_router(entity_router(entity))
    app.add_api_route(
        "/metrics",
        metrics_endpoint,
        name="metrics",
        summary="Prometheus metrics",
        description="How long the API's queries waited on the warehouse, and how they ended, "
        "in Prometheus' text format.",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics."}},
        tags=["status"],
    )

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/vendor/chart.umd.min.js", include_in_schema=False)
    def chart_library() -> FileResponse:
        return FileResponse(CHART_LIBRARY, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_error_handlers(app)
    return app
