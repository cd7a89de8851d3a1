"""How ``make run``'s control service is secured: a token kept in the state folder, or open.

The control service can pause and stop the pipeline, so under ``make run`` it gets a token
unless the user set one or asked for open mode; the terminal says which, once.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from shared.settings import Settings


def control_token_path(settings: Settings) -> Path:
    return settings.state_dir / "control-token"


def control_access_environment(settings: Settings) -> dict[str, str]:
    """Say how the control service is secured; return the extra environment it needs.

    With no token set and open mode not asked for, a random token is generated once into
    ``<state_dir>/control-token`` (mode 0600) and kept across runs, so scripts that read the
    file keep working; the token itself is never printed.
    """
    url = f"http://127.0.0.1:{settings.control_port}"
    if settings.control_api_token is not None:
        print(
            f"control: API at {url}; commands need the token in COINSTREAM_CONTROL_API_TOKEN",
            flush=True,
        )
        return {}
    if settings.control_allow_open:
        print(
            f"control: API at {url} is OPEN (COINSTREAM_CONTROL_ALLOW_OPEN=true): anyone on "
            "this machine can pause or stop the pipeline",
            flush=True,
        )
        return {}
    path = control_token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or not path.read_text().strip():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as token_file:
            token_file.write(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    print(
        f"control: API at {url}; commands need the token in {path}, e.g. "
        f'curl -X PUT -H "Authorization: Bearer $(cat {path})" '
        f"{url}/components/asset-ingestor/pause",
        flush=True,
    )
    return {"COINSTREAM_CONTROL_API_TOKEN": path.read_text().strip()}
