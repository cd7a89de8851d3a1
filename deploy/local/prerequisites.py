"""What must hold before a local process starts: its program on PATH, its port free.

Each check fails with a StackError naming the missing program or the busy port and what to do,
where the process itself would fail later with a message a newcomer cannot act on.
"""

from __future__ import annotations

import shutil
import socket

from deploy.local.errors import StackError


def require_command(name: str, purpose: str, install_hint: str) -> str:
    """The path of ``name`` on PATH; ``purpose`` and ``install_hint`` explain its absence."""
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` was not found on PATH; {purpose}. {install_hint}")
    return path


def require_java() -> str:
    return require_command(
        "java",
        "Java 17 or newer runs the local Kafka broker and Spark",
        "Install it (Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`) and retry.",
    )


def require_free_port(host: str, port: int, setting: str) -> None:
    """Fail unless ``port`` can be bound; ``setting`` is the variable that moves it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves do: only a live listener, not TIME_WAIT, makes bind fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} on {host} is already in use ({setting}); stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it) or set {setting} to a free port"
            ) from None
