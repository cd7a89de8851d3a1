"""What routes get injected with ``Depends``: settings, the pipeline's clients, and auth.

Everything a route touches comes from here, so a test overrides one dependency
(``app.dependency_overrides``) instead of patching a module. The clients live in
``ControlResources``, made once per process by the app's lifespan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.control.components import ComponentRegistry
from services.control.consumer_lag import LagReader
from services.control.freshness import FreshnessReader
from services.control.metrics import AUTH_FAILURES
from services.control.models import Readiness
from services.control.request_origin import origin_refusal
from services.control.security import token_matches
from services.control.shared_answer import SharedAnswer
from shared.settings import ControlServiceSettings

logger = logging.getLogger(__name__)


@dataclass
class ControlResources:
    """The long-lived objects of one control service process."""

    settings: ControlServiceSettings
    open_access: bool
    components: ComponentRegistry
    lag: LagReader
    freshness: FreshnessReader
    readiness: SharedAnswer[Readiness]


def get_resources(request: Request) -> ControlResources:
    resources: ControlResources = request.app.state.resources
    return resources


ResourcesDep = Annotated[ControlResources, Depends(get_resources)]


def get_settings(resources: ResourcesDep) -> ControlServiceSettings:
    return resources.settings


def get_components(resources: ResourcesDep) -> ComponentRegistry:
    return resources.components


def get_lag_reader(resources: ResourcesDep) -> LagReader:
    return resources.lag


def get_freshness_reader(resources: ResourcesDep) -> FreshnessReader:
    return resources.freshness


SettingsDep = Annotated[ControlServiceSettings, Depends(get_settings)]
ComponentsDep = Annotated[ComponentRegistry, Depends(get_components)]
LagReaderDep = Annotated[LagReader, Depends(get_lag_reader)]
FreshnessReaderDep = Annotated[FreshnessReader, Depends(get_freshness_reader)]

# auto_error=False: we answer 401 ourselves, with a message that says what to send.
bearer = HTTPBearer(
    auto_error=False,
    description="COINSTREAM_CONTROL_API_TOKEN (with `make run`: the contents of "
    ".state/control-token).",
)


def require_local_origin(resources: ResourcesDep, request: Request) -> None:
    """Refuse a mutating request from another web page or under a foreign Host, in open and
    token mode alike (see ``request_origin``)."""
    refusal = origin_refusal(
        resources.settings, request.headers.get("host"), request.headers.get("origin")
    )
    if refusal is not None:
        AUTH_FAILURES.labels("origin").inc()
        logger.warning("%s", refusal)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=refusal)


def require_token(
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Let a mutating request through only with the configured bearer token."""
    if resources.open_access:
        return
    token = resources.settings.control_api_token
    assert token is not None  # guaranteed at start by security.check_access_settings
    if credentials is None:
        AUTH_FAILURES.labels("missing").inc()
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="this endpoint changes the pipeline and needs a token: send "
            "`Authorization: Bearer <COINSTREAM_CONTROL_API_TOKEN>` (with `make run`, the "
            "token is in .state/control-token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token_matches(credentials.credentials, token.get_secret_value()):
        AUTH_FAILURES.labels("wrong").inc()
        # Never log what was sent: a wrong token is often a right token for something else.
        logger.warning("refused a mutating request with a wrong bearer token")
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="the bearer token is wrong; use the value of COINSTREAM_CONTROL_API_TOKEN "
            "(with `make run`, the contents of .state/control-token)",
        )
