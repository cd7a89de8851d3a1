"""``/components``: each component's desired and observed state, and the commands that change
what it should do (pause, resume, stop, start, restart).

Commands follow Kafka Connect's REST semantics: they answer 202 once the new desired state is
stored in the compacted control topic, the component acts on it by itself within seconds, and
repeating a command that is already in force changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, status

from services.control.dependencies import ComponentsDep, require_local_origin, require_token
from services.control.errors import ControlError, error_responses
from services.control.metrics import COMMANDS
from services.control.models import (
    Command,
    CommandAccepted,
    CommandRequest,
    ComponentList,
    ComponentStatus,
)
from shared.control_state import COMPONENTS

router = APIRouter(prefix="/components", tags=["components"])

ComponentName = Annotated[
    str,
    Path(
        description=f"One of: {', '.join(COMPONENTS)}.",
        examples=list(COMPONENTS),
    ),
]
CommandBody = Annotated[
    CommandRequest | None,
    Body(description="Optional: who is asking and why, kept with the desired state."),
]

COMMAND_DOCS = {
    Command.PAUSE: (
        "PUT",
        "Pause a component",
        "Desired state PAUSED: a paused ingestor starts no poll (so spends no API credits) and "
        "a paused stream worker consumes nothing; a poll or batch in flight finishes. 409 when "
        "the component is STOPPED.",
    ),
    Command.RESUME: (
        "PUT",
        "Resume a paused component",
        "Desired state RUNNING, from PAUSED. An ingestor polls again once its poll interval "
        "since the last poll has passed. 409 when the component is STOPPED (use start).",
    ),
    Command.STOP: (
        "PUT",
        "Stop a component",
        "Desired state STOPPED: no work, and its Kafka producer or streaming query is released; "
        "the process stays up to report its state and to obey start.",
    ),
    Command.START: (
        "PUT",
        "Start a stopped component",
        "Desired state RUNNING, from STOPPED. 409 when the component is PAUSED (use resume).",
    ),
    Command.RESTART: (
        "POST",
        "Restart a running component's work",
        "Asks a RUNNING component to restart its work once (an ingestor reconnects to Kafka, "
        "forgets a quota pause and polls at once; the stream worker restarts its query). "
        "409 when the component is PAUSED or STOPPED.",
    ),
}


@router.get(
    "",
    summary="Every component's desired and observed state",
    responses=error_responses(503),
)
async def list_components(components: ComponentsDep) -> ComponentList:
    """Desired state from the control topic; observed state, last success and last error from
    each component's ``/healthz`` (UNREACHABLE when it does not answer). 503 while the control
    topic has not been read (Kafka down since this service started)."""
    return ComponentList(components=await components.statuses())


@router.get(
    "/{name}",
    summary="One component's desired and observed state",
    responses=error_responses(404, 503),
)
async def get_component(name: ComponentName, components: ComponentsDep) -> ComponentStatus:
    return await components.status(name)


def _command_endpoint(command: Command) -> Callable[..., Awaitable[CommandAccepted]]:
    async def endpoint(
        name: ComponentName,
        request: Request,
        components: ComponentsDep,
        body: CommandBody = None,
    ) -> CommandAccepted:
        caller = f"client {request.client.host}" if request.client else "unknown client"
        try:
            accepted = await components.command(name, command, body, caller)
        except ControlError as error:
            known = name if name in COMPONENTS else "unknown"
            COMMANDS.labels(known, command.value, str(error.status_code)).inc()
            raise
        COMMANDS.labels(name, command.value, "changed" if accepted.changed else "unchanged").inc()
        return accepted

    endpoint.__name__ = f"{command.value}_component"
    return endpoint


for _command, (_method, _summary, _description) in COMMAND_DOCS.items():
    router.add_api_route(
        f"/{{name}}/{_command.value}",
        _command_endpoint(_command),
        methods=[_method],
        status_code=status.HTTP_202_ACCEPTED,
        summary=_summary,
        description=_description,
        dependencies=[Depends(require_local_origin), Depends(require_token)],
        responses=error_responses(401, 403, 404, 409, 422, 503),
        response_model=CommandAccepted,
        response_description="The command is stored; the component acts on it within seconds.",
    )
