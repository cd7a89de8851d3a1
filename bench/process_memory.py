"""Memory of running processes, read from ``/proc``: peak RSS (VmHWM), current RSS, children.

Linux only, as the local stack is. A process that ended between listing and reading counts as
nothing rather than failing a benchmark that is stopping it.
"""

from __future__ import annotations

from pathlib import Path

MIB = 1024


def _status_kib(pid: int, field: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def peak_rss_mib(pid: int) -> float:
    """The highest resident set size the process has had (VmHWM), in MiB."""
    return _status_kib(pid, "VmHWM") / MIB


def rss_mib(pid: int) -> float:
    """The resident set size now (VmRSS), in MiB."""
    return _status_kib(pid, "VmRSS") / MIB


def command_name(pid: int) -> str:
    """The executable's short name (``java``, ``python``, ``prometheus``)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (a shell, the Python it runs, the JVM that Python
    starts), parents first."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop(0)
        if Path(f"/proc/{current}").exists():
            tree.append(current)
            pending.extend(_children(current))
    return tree
