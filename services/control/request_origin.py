"""Which requests may change the pipeline, by where they come from (Origin and Host headers).

A bearer token does not stop a web page in the user's browser from sending a command to a
control service that runs open on loopback, and DNS rebinding (a name of the attacker's that
resolves to 127.0.0.1) makes such a page same-origin to the browser. So, in open and token
mode alike, a mutating request is refused when

- its ``Host`` is not a name this service answers to (loopback names, the bind address, and
  ``COINSTREAM_CONTROL_ALLOWED_HOSTS``): a rebound name arrives with the attacker's host, and
- it carries an ``Origin`` that is not this service's own (``http(s)://<its Host>``): browsers
  send one with every cross-origin POST and PUT, scripts and the ``coinstream`` command do not.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from shared.settings import ControlServiceSettings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(authority: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port``, lower case, without brackets or port."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    if authority.count(":") > 1:  # a bare IPv6 address
        return authority
    return authority.rsplit(":", 1)[0] if ":" in authority else authority


def allowed_hosts(settings: ControlServiceSettings) -> frozenset[str]:
    """Loopback names, the bind address when it is one address, and the configured names."""
    names = set(LOOPBACK_HOSTS)
    names.update(settings.control_allowed_host_names)
    try:
        if not ipaddress.ip_address(settings.bind_host).is_unspecified:
            names.add(settings.bind_host.lower())
    except ValueError:
        names.add(settings.bind_host.lower())  # a name, such as localhost
    return frozenset(names)


def origin_refusal(
    settings: ControlServiceSettings, host: str | None, origin: str | None
) -> str | None:
    """Why a mutating request with these headers is refused, in one line; None to let it
    through (to the token check)."""
    name = host_name(host or "")
    if name not in allowed_hosts(settings):
        return (
            f"refused: Host {host!r} is not a name this control service answers to (a DNS "
            "rebinding page would look like this); call it as 127.0.0.1 or localhost, or add "
            "the name to COINSTREAM_CONTROL_ALLOWED_HOSTS"
        )
    if origin is None:
        return None
    parts = urlsplit(origin.strip())
    own = parts.scheme in {"http", "https"} and parts.netloc.lower() == (host or "").lower()
    if not own:
        return (
            f"refused: Origin {origin!r} is not this control service's own "
            f"(http://{host}); commands are not accepted from other web pages"
        )
    return None
