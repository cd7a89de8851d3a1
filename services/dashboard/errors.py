"""Errors the dashboard answers with, as JSON ``{"detail": ...}`` that says what to do.

A warehouse that does not answer is a 503 naming it (the emulator's URL, or the BigQuery
project), so the page can tell the user which service to check.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.dashboard.models import Problem
from shared.warehouse import WarehouseUnavailable

_DESCRIPTIONS = {
    422: "The query parameters are not valid; `detail` says which and why.",
    503: "The warehouse did not answer; `detail` names it (the BigQuery emulator's URL, or the "
    "BigQuery project) and says what to check.",
}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, for a route decorator."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in status_codes}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WarehouseUnavailable)
    async def warehouse_unavailable(request: Request, error: WarehouseUnavailable) -> JSONResponse:
        return JSONResponse(Problem(detail=error.detail).model_dump(), status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        detail = f"the request is not valid ({problems}); see /docs for the parameters"
        return JSONResponse(Problem(detail=detail).model_dump(), status_code=422)
