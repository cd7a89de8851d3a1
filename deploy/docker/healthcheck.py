"""A container's health check: exit 0 when the URL answers 200, 1 otherwise.

Compose runs it every few seconds in each coinstream container, so it uses the standard library
only (no settings, no third-party imports) and starts in tens of milliseconds; the slim runtime
image has no curl or wget to do the same.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0


def answers_ok(url: str) -> bool:
    """True when ``url`` (one of our own http:// endpoints) answers 200 within the timeout."""
    if not url.startswith("http://"):
        raise SystemExit(f"healthcheck: expected an http:// URL, got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError) as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return False


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python healthcheck.py http://127.0.0.1:PORT/healthz")
    sys.exit(0 if answers_ok(sys.argv[1]) else 1)
