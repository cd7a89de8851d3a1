"""What the control service answers a request it cannot carry out, in-process on the real Kafka
and emulator (``tests.harness.control_app``): unready dependencies named, and 4xx answers that say
what to do. A process would add nothing here; ``test_control_startup.py`` starts one to see it
refuse unsafe settings.
"""

from __future__ import annotations

import secrets

import pytest

from tests.harness.control_app import control_client, control_environment
from tests.harness.environment import offset_port
from tests.harness.processes import LocalStack

TOKEN = secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("broken", "named", "not_named"),
    [
        (
            {"COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(18199)}"},
            "the warehouse (BigQuery emulator at",
            "Kafka at",
        ),
        (
            {"COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(18198)}"},
            "Kafka at",
            "the warehouse",
        ),
    ],
    ids=["warehouse", "kafka"],
)
async def test_readyz_names_the_dependency_that_does_not_answer(
    local_stack: LocalStack, broken: dict[str, str], named: str, not_named: str
) -> None:
    environment = control_environment("readyz", COINSTREAM_CONTROL_API_TOKEN=TOKEN, **broken)
    async with control_client(environment) as client:
        assert (await client.get("/healthz")).status_code == 200  # alive, though not ready
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready"
    assert named in body["detail"] and not_named not in body["detail"]
    assert "start" in body["detail"]  # says what to do


async def test_bad_requests_get_4xx_that_say_what_to_do(local_stack: LocalStack) -> None:
    environment = control_environment("requests", COINSTREAM_CONTROL_API_TOKEN=TOKEN)
    async with control_client(environment) as client:
        unknown = await client.put("/components/spark-thing/pause", headers=AUTH)
        assert unknown.status_code == 404
        assert "asset-ingestor, exchange-ingestor, stream-worker" in unknown.json()["detail"]
        assert (await client.get("/components/spark-thing")).status_code == 404

        malformed = await client.put(
            "/components/exchange-ingestor/pause",
            content=b"{not json",
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert malformed.status_code == 422
        assert "send no body, or a JSON object" in malformed.json()["detail"]

        extra = await client.put(
            "/components/exchange-ingestor/pause",
            json={"requested_by": "t", "colour": "red"},
            headers=AUTH,
        )
        assert extra.status_code == 422
        assert extra.json()["errors"][0]["location"] == ["body", "colour"]

        # 409: a stopped component cannot be paused or resumed, only started.
        stopped = await client.put("/components/stream-worker/stop", headers=AUTH)
        assert stopped.status_code == 202, stopped.text
        refused = await client.put("/components/stream-worker/pause", headers=AUTH)
        assert refused.status_code == 409
        assert "PUT /components/stream-worker/start" in refused.json()["detail"]
        resumed = await client.put("/components/stream-worker/resume", headers=AUTH)
        assert resumed.status_code == 409
        assert (
            await client.post("/components/stream-worker/restart", headers=AUTH)
        ).status_code == 409
        assert (
            await client.put("/components/stream-worker/start", headers=AUTH)
        ).status_code == 202
