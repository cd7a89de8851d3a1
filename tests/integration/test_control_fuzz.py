"""Schema-driven fuzzing of the control service (schemathesis against its OpenAPI document),
in-process on the real Kafka and emulator: schemathesis calls the app object through its ASGI
transport, with the app's real lifespan. ``test_control_commands.py`` checks that the running
service serves this same document.

The document is built from the app at import (so schemathesis can make one test per operation
before anything runs). First without the token, against a service of its own: every generated
command must be refused, and its control topic must still be empty afterwards, so no request
changed anything. Then with the token: no answer may be a 5xx or stray from the document
(status, content type, body schema), and schemathesis' ``ignored_auth`` check replays each
accepted command without a token and with a wrong one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.python import asgi

from services.control.app import create_app
from shared.settings import Settings
from tests.harness.broker import topic_end_total
from tests.harness.control_app import CONTROL_PORT, control_environment
from tests.harness.processes import LocalStack, settings_from

TOKEN = secrets.token_urlsafe(24)
BASE_URL = f"http://127.0.0.1:{CONTROL_PORT}"
MUTATING = {"PUT", "POST", "PATCH", "DELETE"}
FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests on every run: a failure here is reproducible
)


def fuzzed(settings: Settings) -> schemathesis.BaseSchema:
    """A schema whose cases call the app for ``settings`` in-process."""
    app = create_app(settings)
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app  # what schemathesis.openapi.from_asgi does, without a request at import
    return schema


# Each on a control topic of its own, so what one writes cannot hide what the other did.
UNAUTHENTICATED = settings_from(
    control_environment("fuzz-anonymous", COINSTREAM_CONTROL_API_TOKEN=TOKEN)
)
AUTHENTICATED = settings_from(control_environment("fuzz", COINSTREAM_CONTROL_API_TOKEN=TOKEN))
unauthenticated = fuzzed(UNAUTHENTICATED)
authenticated = fuzzed(AUTHENTICATED)


@pytest.fixture(scope="module")
def control_service(local_stack: LocalStack) -> Iterator[None]:
    """The apps' lifespans start at their first request (on schemathesis' event loop thread)
    and stop here, so no watcher or refresher outlives the module."""
    yield
    asgi.shutdown_lifespans()


@unauthenticated.include(method=sorted(MUTATING)).parametrize()
@FUZZ_SETTINGS
def test_no_command_without_the_token_is_carried_out(
    control_service: None, case: Case[Any]
) -> None:
    response = case.call(base_url=BASE_URL)
    assert response.status_code < 500, response.text
    # Auth comes first; only a body that is not JSON at all is refused before it (422), and a
    # method the route does not take (405: schemathesis tries TRACE and friends too).
    assert response.status_code in (401, 403, 405, 422), (case.as_curl_command(), response.text)
    if response.status_code == 422:
        assert "json_invalid" in response.text or "body" in response.text


def test_the_control_topic_is_still_empty_after_the_unauthenticated_fuzzing(
    control_service: None,
) -> None:
    assert topic_end_total(UNAUTHENTICATED, UNAUTHENTICATED.topic_control) == 0


@authenticated.parametrize()
@FUZZ_SETTINGS
def test_no_request_gets_a_5xx_or_an_undocumented_answer(
    control_service: None, case: Case[Any]
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(base_url=BASE_URL, headers=headers)
