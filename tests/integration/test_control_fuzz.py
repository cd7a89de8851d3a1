"""Schema-driven fuzzing of the control service (schemathesis against its OpenAPI document).

The document is built from the app at import (so schemathesis can make one test per operation
before anything runs); a test checks that the running service serves exactly that document.

First without the token: every generated command must be refused, and the control topic must
still be empty afterwards, so no request changed anything. Then with the token: no answer may
be a 5xx or stray from the document (status, content type, body schema), and schemathesis'
``ignored_auth`` check replays each accepted command without a token and with a wrong one.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from services.control.app import create_app
from tests.harness.broker import topic_end_total
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, settings_from, start_process

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:8]
TOKEN = secrets.token_urlsafe(24)
CONTROL_PORT = offset_port(18130)
BASE_URL = f"http://127.0.0.1:{CONTROL_PORT}"
ENVIRONMENT = {
    **TEST_ENVIRONMENT,
    "COINSTREAM_TOPIC_CONTROL": f"test.fuzz.control.{SUFFIX}",
    "COINSTREAM_TOPIC_ASSETS": f"test.fuzz.assets.{SUFFIX}",
    "COINSTREAM_TOPIC_EXCHANGES": f"test.fuzz.exchanges.{SUFFIX}",
    "COINSTREAM_CONTROL_PORT": str(CONTROL_PORT),
    # Nothing listens on these: the components show as UNREACHABLE, which is a valid answer.
    "COINSTREAM_ASSET_INGESTOR_PORT": str(offset_port(18131)),
    "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(offset_port(18132)),
    "COINSTREAM_STREAM_WORKER_PORT": str(offset_port(18133)),
    "COINSTREAM_CONTROL_API_TOKEN": TOKEN,
}
SETTINGS = settings_from(ENVIRONMENT)
MUTATING = {"PUT", "POST", "PATCH", "DELETE"}
FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests on every run: a failure here is reproducible
)


@pytest.fixture(scope="module")
def control_service(local_stack: LocalStack) -> Iterator[str]:
    process = start_process(
        f"control-fuzz-{SUFFIX}",
        "services.control",
        ENVIRONMENT,
        TEST_STATE_DIR / "logs",
        f"{BASE_URL}/readyz",
    )
    yield BASE_URL
    process.stop()
    assert TOKEN not in process.log_text()


OPENAPI = create_app(SETTINGS).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_service_serves_the_fuzzed_document(control_service: str) -> None:
    assert httpx.get(f"{control_service}/openapi.json").json() == OPENAPI


@schema.include(method=sorted(MUTATING)).parametrize()
@FUZZ_SETTINGS
def test_no_command_without_the_token_is_carried_out(control_service: str, case: Case[Any]) -> None:
    response = case.call(base_url=BASE_URL)
    assert response.status_code < 500, response.text
    # Auth comes first; only a body that is not JSON at all is refused before it (422), and a
    # method the route does not take (405: schemathesis tries TRACE and friends too).
    assert response.status_code in (401, 403, 405, 422), (case.as_curl_command(), response.text)
    if response.status_code == 422:
        assert "json_invalid" in response.text or "body" in response.text


def test_the_control_topic_is_still_empty_after_the_unauthenticated_fuzzing(
    control_service: str,
) -> None:
    assert topic_end_total(SETTINGS, SETTINGS.topic_control) == 0


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_request_gets_a_5xx_or_an_undocumented_answer(
    control_service: str, case: Case[Any]
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(base_url=BASE_URL, headers=headers)
