"""Errors the control service answers with, each saying what is wrong and what to do.

Routes raise ``ControlError`` subclasses; the handlers here turn them, and requests that do not
match the schema, into JSON ``{"detail": ...}`` answers as the OpenAPI document describes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.control.models import FieldProblem, Problem, ValidationProblem

EXAMPLE_COMMAND_BODY = '{"requested_by": "alice", "reason": "quota nearly spent"}'
UNREADABLE_BODY = "There was an error parsing the body"
"""FastAPI's own detail for a body it could not decode."""


class ControlError(Exception):
    """An answer other than success; ``detail`` is shown to the caller as it is."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownComponent(ControlError):
    status_code = 404


class InvalidTransition(ControlError):
    status_code = 409


class DependencyUnavailable(ControlError):
    """Kafka or the warehouse did not answer; nothing was changed."""

    status_code = 503


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, for a route decorator."""
    descriptions = {
        401: "No bearer token: send `Authorization: Bearer <token>`.",
        403: "The bearer token is wrong.",
        404: "No such component.",
        409: "The command does not apply to the component's desired state.",
        422: "The request does not match the schema.",
        503: "A dependency (Kafka or the warehouse) did not answer; nothing was changed.",
    }
    return {
        code: {
            "model": ValidationProblem if code == 422 else Problem,
            "description": descriptions[code],
        }
        for code in status_codes
    }


def _describe_validation(error: RequestValidationError) -> tuple[str, list[FieldProblem]]:
    problems = [
        FieldProblem(
            location=[part if isinstance(part, int) else str(part) for part in item["loc"]],
            message=str(item["msg"]),
            type=str(item["type"]),
        )
        for item in error.errors()
    ]
    summary = "; ".join(
        f"{'.'.join(str(part) for part in problem.location)}: {problem.message}"
        for problem in problems
    )
    advice = "fix the request as the OpenAPI document (/docs) describes"
    if any(problem.location[:1] == ["body"] for problem in problems):
        advice = (
            f"send no body, or a JSON object such as {EXAMPLE_COMMAND_BODY} with "
            "`Content-Type: application/json`"
        )
    return f"the request is not valid ({summary}); {advice}", problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ControlError)
    async def control_error(request: Request, error: ControlError) -> JSONResponse:
        return JSONResponse(
            Problem(detail=error.detail).model_dump(), status_code=error.status_code
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        # FastAPI answers 400 for a body it cannot even decode (not UTF-8, say); to a caller
        # that is one more malformed body, which this API answers with 422 like the others.
        if error.status_code == 400 and error.detail == UNREADABLE_BODY:
            body = ValidationProblem(
                detail="the request body could not be read; send no body, or a JSON object "
                f"such as {EXAMPLE_COMMAND_BODY} (UTF-8) with `Content-Type: application/json`",
                errors=[
                    FieldProblem(location=["body"], message="not UTF-8 JSON", type="unreadable")
                ],
            )
            return JSONResponse(body.model_dump(), status_code=422)
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # The request's own values are not echoed: they may hold a token pasted in by mistake.
        detail, problems = _describe_validation(error)
        body = ValidationProblem(detail=detail, errors=problems)
        return JSONResponse(body.model_dump(), status_code=422)
