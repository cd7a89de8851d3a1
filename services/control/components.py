"""The components the control service commands: desired state (control topic) and observed
state (each component's ``/healthz``), and the commands that move from one desired state to
another, with Kafka Connect's semantics: asynchronous, idempotent, persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka.errors import KafkaError
from pydantic import TypeAdapter, ValidationError

from services.control.desired_state_writer import DesiredStateWriter
from services.control.errors import DependencyUnavailable, InvalidTransition, UnknownComponent
from services.control.models import (
    Command,
    CommandAccepted,
    CommandRequest,
    ComponentStatus,
    ObservedState,
)
from services.control.security import redact
from shared.control_state import (
    COMPONENTS,
    Desired,
    DesiredState,
    DesiredStateWatcher,
)
from shared.settings import ControlServiceSettings
from shared.supervised_processes import read_supervisor_report, supervisor_report_path

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2.0
KAFKA_WRITE_SECONDS = 10.0
DESIRED_STATE_WAIT_SECONDS = 5.0
_OPTIONAL_TIME: TypeAdapter[datetime | None] = TypeAdapter(datetime | None)


def plan_command(current: DesiredState, command: Command) -> tuple[Desired, int]:
    """The desired state and restart generation after ``command``; InvalidTransition if the
    command does not apply. Repeating a command that is already in force changes nothing.

    ``resume`` undoes ``pause`` and ``start`` undoes ``stop``; crossing them (resuming a stopped
    component) is refused so that nobody restarts a component that someone stopped on purpose
    by pressing the wrong button. ``restart`` applies to a component that should be RUNNING.
    """
    name, state = current.component, current.state
    base = f"/components/{name}"
    if command is Command.STOP:
        return Desired.STOPPED, current.restart_generation
    if command is Command.PAUSE:
        if state is Desired.STOPPED:
            raise InvalidTransition(
                f"{name} is STOPPED, and only a running component can be paused; "
                f"start it first (PUT {base}/start), then pause it"
            )
        return Desired.PAUSED, current.restart_generation
    if command is Command.RESUME:
        if state is Desired.STOPPED:
            raise InvalidTransition(
                f"{name} is STOPPED; resume undoes pause, start undoes stop: PUT {base}/start"
            )
        return Desired.RUNNING, current.restart_generation
    if command is Command.START:
        if state is Desired.PAUSED:
            raise InvalidTransition(
                f"{name} is PAUSED; start undoes stop, resume undoes pause: PUT {base}/resume"
            )
        return Desired.RUNNING, current.restart_generation
    # restart
    if state is not Desired.RUNNING:
        undo = "resume" if state is Desired.PAUSED else "start"
        raise InvalidTransition(
            f"{name} is {state}, and restart applies to a RUNNING component; "
            f"{undo} it instead (PUT {base}/{undo}), which brings its work back"
        )
    return Desired.RUNNING, current.restart_generation + 1


def _what_happens(name: str, command: Command, desired: Desired, changed: bool) -> str:
    if not changed:
        return f"{name} already has desired state {desired}; nothing changed"
    verb = {
        Command.PAUSE: "pause (no new work; a poll or batch in flight finishes)",
        Command.RESUME: "resume",
        Command.STOP: "stop",
        Command.START: "start",
        Command.RESTART: "restart its work",
    }[command]
    return (
        f"{name} will {verb} within seconds; GET /components/{name} shows observed_state "
        f"{desired} once it has"
    )


class ComponentRegistry:
    """Desired and observed state of every component, and the commands that change the first."""

    def __init__(
        self,
        settings: ControlServiceSettings,
        watcher: DesiredStateWatcher,
        writer: DesiredStateWriter,
        http: httpx.AsyncClient,
        read_back_seconds: float = KAFKA_WRITE_SECONDS,
    ) -> None:
        self.settings = settings
        self.watcher = watcher
        self.writer = writer
        self.http = http
        self.urls = settings.component_urls
        self.read_back_seconds = read_back_seconds
        # One command at a time, so that two requests cannot both decide from the same state.
        self._commands = asyncio.Lock()
        # Our newest write (partition, offset) while the watcher has not read it back: until it
        # has, the watcher's view predates that command, and nothing may be planned from it.
        self._unconfirmed: tuple[int, int] | None = None

    def require_known(self, name: str) -> str:
        if name not in COMPONENTS:
            raise UnknownComponent(
                f"unknown component {name!r}; use one of: {', '.join(COMPONENTS)} "
                "(GET /components lists them)"
            )
        return name

    async def require_desired_states(self) -> None:
        """Wait (briefly) until the control topic has been read: until then every desired state
        would be a guess (RUNNING), which is worse than no answer."""
        if self.watcher.caught_up:
            return
        try:
            async with asyncio.timeout(DESIRED_STATE_WAIT_SECONDS):
                await self.watcher.wait_caught_up()
        except TimeoutError:
            raise DependencyUnavailable(
                f"the control service has not read the desired states from Kafka topic "
                f"{self.settings.topic_control} yet (is Kafka at "
                f"{self.settings.kafka_bootstrap_servers} up?); retry when GET /readyz "
                "answers 200"
            ) from None

    async def statuses(self) -> list[ComponentStatus]:
        await self.require_desired_states()
        return list(await asyncio.gather(*(self.status(name) for name in COMPONENTS)))

    async def status(self, name: str) -> ComponentStatus:
        self.require_known(name)
        await self.require_desired_states()
        desired = self.watcher.get(name)
        health_url = f"{self.urls[name]}/healthz"
        observed, health = await self._probe(health_url)
        report = read_supervisor_report(supervisor_report_path(self.settings))
        supervised = report.processes.get(name) if report else None
        return ComponentStatus(
            name=name,
            desired_state=desired.state,
            observed_state=observed,
            in_sync=observed.value == desired.state.value,
            restart_generation=desired.restart_generation,
            requested_by=desired.requested_by,
            requested_at=desired.requested_at,
            reason=desired.reason,
            health_url=health_url,
            health_status=health.get("status") if isinstance(health.get("status"), str) else None,
            last_success_at=_time(health.get("last_successful_poll_at"))
            or _time(health.get("last_batch_at")),
            last_error=redact(_text(health.get("last_error")), self.settings),
            last_error_at=_time(health.get("last_error_at")),
            checked_at=datetime.now(UTC),
            restarts=supervised.restarts if supervised else None,
            last_exit_status=supervised.last_exit_status if supervised else None,
        )

    async def _probe(self, url: str) -> tuple[ObservedState, dict[str, Any]]:
        """The observed state and the health document (synthesised when there is none)."""
        try:
            response = await self.http.get(url, timeout=HEALTH_TIMEOUT_SECONDS)
        except httpx.HTTPError as error:
            return ObservedState.UNREACHABLE, {
                "last_error": f"no answer from {url}: {type(error).__name__}"
            }
        try:
            health = response.json() if response.status_code == 200 else None
        except ValueError:
            health = None
        if not isinstance(health, dict):
            return ObservedState.FAILED, {
                "last_error": f"{url} answered HTTP {response.status_code} without its state"
            }
        reported = health.get("state", ObservedState.RUNNING.value)
        if reported not in {state.value for state in ObservedState} or reported == "UNREACHABLE":
            return ObservedState.FAILED, {
                **health,
                "last_error": f"{url} reports an unknown state {reported!r}",
            }
        return ObservedState(reported), health

    async def command(
        self, name: str, command: Command, request: CommandRequest | None, caller: str
    ) -> CommandAccepted:
        """Record the desired state ``command`` leads to; the component acts on it by itself."""
        self.require_known(name)
        await self.require_desired_states()  # nothing is changed before they are known
        async with self._commands:
            await self._require_own_writes_read()
            current = self.watcher.get(name)
            state, generation = plan_command(current, command)
            changed = (state, generation) != (current.state, current.restart_generation)
            desired = current
            if changed:
                # Redacted: a token pasted into the wrong field must not be stored or logged.
                requested_by = redact(request.requested_by if request else None, self.settings)
                desired = DesiredState(
                    component=name,
                    state=state,
                    restart_generation=generation,
                    requested_by=requested_by or caller,
                    requested_at=datetime.now(UTC),
                    reason=redact(request.reason if request else None, self.settings),
                )
                await self._store(desired)
                logger.info(
                    "%s %s by %s%s: desired state %s, restart generation %d",
                    command.value,
                    name,
                    desired.requested_by,
                    f" ({desired.reason})" if desired.reason else "",
                    desired.state,
                    desired.restart_generation,
                )
        return CommandAccepted(
            component=name,
            command=command,
            desired_state=desired.state,
            restart_generation=desired.restart_generation,
            changed=changed,
            requested_by=desired.requested_by,
            requested_at=desired.requested_at,
            message=_what_happens(name, command, desired.state, changed),
        )

    async def _store(self, desired: DesiredState) -> None:
        try:
            async with asyncio.timeout(KAFKA_WRITE_SECONDS):
                partition, offset = await self.writer.write(desired)
        except (KafkaError, OSError, TimeoutError) as error:
            raise DependencyUnavailable(
                f"Kafka at {self.settings.kafka_bootstrap_servers} did not store the command "
                f"({type(error).__name__}); it may not have been recorded: check GET "
                f"/components/{desired.component} and retry when GET /readyz answers 200"
            ) from None
        # Read our own write, so that GET /components shows it at once, and the next command
        # is planned from it.
        self._unconfirmed = (partition, offset)
        with contextlib.suppress(DependencyUnavailable):  # stored; the next command waits
            await self._require_own_writes_read()

    async def _require_own_writes_read(self) -> None:
        """Return once the watcher has read our newest write back; DependencyUnavailable (503,
        nothing applied) if it has not within ``read_back_seconds``: a command planned from
        the older view could contradict the one just acknowledged."""
        if self._unconfirmed is None:
            return
        partition, offset = self._unconfirmed
        try:
            async with asyncio.timeout(self.read_back_seconds):
                await self.watcher.wait_for_offset(partition, offset)
        except TimeoutError:
            raise DependencyUnavailable(
                f"refused, nothing changed: the control service has not yet read back its "
                f"previous command (offset {offset} of {self.settings.topic_control}), so its "
                "view of the desired states is stale; retry when GET /readyz answers 200"
            ) from None
        self._unconfirmed = None


def _time(value: Any) -> datetime | None:
    try:
        return _OPTIONAL_TIME.validate_python(value)
    except ValidationError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
