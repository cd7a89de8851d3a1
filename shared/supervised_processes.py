"""What ``make run``'s supervisor reports about each process (restarts, last exit), for control.

The supervisor (``deploy/local/supervisor.py``) writes ``<state_dir>/run-processes.json`` while
it runs and removes it when it stops; the control service shows it in ``/components``. Under
Compose no supervisor writes it, so there is no report and the fields are null.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from shared.settings import CommonSettings


class SupervisedProcess(BaseModel):
    """One process as the supervisor sees it."""

    pid: int | None = Field(description="Its process id while it runs; null between restarts.")
    restarts: int = Field(description="Times the supervisor started it again after it exited.")
    last_exit_status: int | None = Field(
        description="Status of its last exit (negative: the signal that ended it); null: none."
    )


class SupervisorReport(BaseModel):
    supervisor_pid: int
    processes: dict[str, SupervisedProcess]


def supervisor_report_path(settings: CommonSettings) -> Path:
    return settings.state_dir / "run-processes.json"


def write_supervisor_report(path: Path, report: SupervisorReport) -> None:
    """Replace the report in one step, so that a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(report.model_dump_json())
    os.replace(partial, path)


def read_supervisor_report(path: Path) -> SupervisorReport | None:
    """The report of a running supervisor; None when there is none, or its writer is gone (a
    supervisor that was killed cannot remove its file)."""
    try:
        report = SupervisorReport.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None
    try:
        os.kill(report.supervisor_pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return report
