"""Secrets out of what a service shows: health documents, API answers, stored reasons.

Error text often quotes a URL or a header: a CoinCap base URL given with ``?apiKey=...``, an
``Authorization: Bearer ...`` echoed by a proxy. Before such text is served, every secret the
settings hold is replaced, and so is any credential-looking query value or bearer token, known
or not.
"""

from __future__ import annotations

import re

from pydantic import SecretStr

from shared.settings import CommonSettings

REDACTED = "[redacted]"

# ?apiKey=..., &access_token=..., &X-Signature=...: the value up to the next separator.
_CREDENTIAL_QUERY_VALUE = re.compile(
    r"([?&;][^=&;#\s]*(?:key|token|secret|password|passwd|signature|auth)[^=&;#\s]*=)"
    r"[^&;#\s'\"]+",
    re.IGNORECASE,
)
_BEARER_VALUE = re.compile(r"(\bBearer\s+)[^\s'\",;]+", re.IGNORECASE)


def redact_secrets(text: str | None, settings: CommonSettings) -> str | None:
    """``text`` with every secret the settings hold, every credential-looking query value and
    every bearer token replaced by ``[redacted]``.

    The secrets are the ``SecretStr`` fields of whichever groups ``settings`` combines, so a
    service redacts what it holds and a secret added to a group is redacted with no change here.
    """
    if text is None:
        return None
    for name in type(settings).model_fields:
        secret = getattr(settings, name)
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else ""
        if value:
            text = text.replace(value, REDACTED)
    text = _CREDENTIAL_QUERY_VALUE.sub(rf"\1{REDACTED}", text)
    return _BEARER_VALUE.sub(rf"\1{REDACTED}", text)
