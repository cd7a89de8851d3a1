"""How the browser tests and the dashboard bench run Debian's Chromium headless.

Playwright's own browser download does not work offline, so Playwright drives the Debian package.
The flags keep Chromium from reaching for the network on its own (updates, sync, QUIC), which
the browser tests also forbid.
"""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
