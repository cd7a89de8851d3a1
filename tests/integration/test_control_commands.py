"""The control service's commands against the pipeline as real processes: a simulator of its
own, both ingestors and the control service, on the session's broker and emulator.

The module shares one pipeline (``tests.harness.pipeline``). A test that pauses, stops or
restarts something leaves it running again as it found it, so no test depends on another.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.control.app import create_app
from tests.harness.broker import read_topic, topic_end_total
from tests.harness.pipeline import INGESTORS, Pipeline
from tests.harness.processes import LocalStack
from tests.harness.waiting import wait_for

POLL_INTERVAL = 1.0  # the harness pipeline's COINSTREAM_POLL_INTERVAL_SECONDS


@pytest.fixture(scope="module")
def pipeline(local_stack: LocalStack) -> Iterator[Pipeline]:
    with Pipeline("control-commands", 18110, services=(*INGESTORS, "control")) as running:
        yield running


def test_the_service_serves_the_document_the_fuzz_tests_fuzz(pipeline: Pipeline) -> None:
    """``test_control_fuzz.py`` fuzzes the app object in-process; this is what the process
    ``python -m services.control`` serves."""
    assert pipeline.api.json("/openapi.json") == create_app(pipeline.settings).openapi()


def test_commands_need_the_right_token(pipeline: Pipeline) -> None:
    api = pipeline.api
    missing = api.command("exchange-ingestor", "pause", anonymous=True)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]

    wrong_token = "not-the-token-" + secrets.token_hex(4)
    wrong = api.command("exchange-ingestor", "pause", token=wrong_token)
    assert wrong.status_code == 403
    assert "wrong" in wrong.json()["detail"]
    assert wrong_token not in wrong.text

    # Neither request changed anything.
    assert api.component("exchange-ingestor")["desired_state"] == "RUNNING"

    # A token pasted into a body is not echoed back either.
    echoed = api.command("exchange-ingestor", "resume", json={"reason": 5, "token": api.token})
    assert echoed.status_code == 422
    assert str(api.token) not in echoed.text


def test_the_control_topic_is_compacted_and_keyed_by_component(pipeline: Pipeline) -> None:
    settings = pipeline.settings

    async def configs_and_keys() -> tuple[dict[str, str], set[bytes | None]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, settings.topic_control)]
            )
        finally:
            await admin.close()
        entries = {entry[0]: entry[1] for entry in response.resources[0][4]}
        records = await read_topic(settings.kafka_bootstrap_servers, settings.topic_control)
        return entries, {record.key for record in records}

    assert pipeline.api.command("stream-worker", "pause").status_code == 202
    assert pipeline.api.command("stream-worker", "resume").status_code == 202
    configs, keys = asyncio.run(configs_and_keys())
    assert configs["cleanup.policy"] == "compact"
    assert b"stream-worker" in keys
    assert keys <= {b"asset-ingestor", b"exchange-ingestor", b"stream-worker"}


def test_a_paused_ingestor_stays_paused_across_restarts_then_resumes(pipeline: Pipeline) -> None:
    api, settings = pipeline.api, pipeline.settings
    topic = settings.topic_assets
    wait_for(
        lambda: (
            api.component("asset-ingestor")["observed_state"] == "RUNNING"
            and api.component("asset-ingestor")["last_success_at"] is not None
        ),
        "for the asset ingestor to poll",
        60,
    )

    started = time.monotonic()
    accepted = api.command("asset-ingestor", "pause", json={"requested_by": "test", "reason": "x"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["desired_state"] == "PAUSED" and accepted.json()["changed"] is True
    assert api.component("asset-ingestor")["desired_state"] == "PAUSED"  # read-your-write
    try:
        wait_for(
            lambda: api.component("asset-ingestor")["observed_state"] == "PAUSED",
            "for the ingestor to pause",
            30,
        )
        pause_seconds = time.monotonic() - started
        print(f"\npause took effect in {pause_seconds:.2f} s")
        assert pause_seconds < 10
        again = api.command("asset-ingestor", "pause")
        assert again.status_code == 202 and again.json()["changed"] is False  # idempotent

        # Whatever the last poll fetched reaches Kafka; after that, nothing more.
        wait_for(lambda: pipeline.paused_and_delivered("asset-ingestor"), "for delivery", 30)
        requests_before = pipeline.simulator_requests("assets")
        messages_before = topic_end_total(settings, topic)
        exchange_messages_before = topic_end_total(settings, settings.topic_exchanges)
        window_end = time.monotonic() + 5 * POLL_INTERVAL
        while time.monotonic() < window_end:  # five poll intervals of watching
            assert pipeline.simulator_requests("assets") == requests_before, "a paused one polled"
            time.sleep(0.5)
        assert topic_end_total(settings, topic) == messages_before, "a paused ingestor produced"
        # The other ingestor was not paused and kept going.
        assert topic_end_total(settings, settings.topic_exchanges) > exchange_messages_before

        # Restart the ingestor and the control service: the pause is in Kafka, not in them.
        pipeline.restart_service("asset-ingestor")
        wait_for(
            lambda: pipeline.health("asset-ingestor").get("state") == "PAUSED",
            "for the restarted ingestor to read its state",
            30,
        )
        pipeline.restart_service("control")
        after_restarts = api.component("asset-ingestor")
        assert after_restarts["desired_state"] == "PAUSED"
        assert after_restarts["observed_state"] == "PAUSED"
        assert after_restarts["requested_by"] == "test" and after_restarts["reason"] == "x"
        assert pipeline.simulator_requests("assets") == requests_before, "a restarted one polled"
        assert topic_end_total(settings, topic) == messages_before
    finally:
        resumed_at = time.monotonic()
        assert api.command("asset-ingestor", "resume").status_code == 202
    wait_for(
        lambda: topic_end_total(settings, topic) > messages_before,
        "for records to flow again",
        30,
    )
    print(f"records flowed {time.monotonic() - resumed_at:.2f} s after resume")
    assert pipeline.simulator_requests("assets") > requests_before
    wait_for(
        lambda: api.component("asset-ingestor")["observed_state"] == "RUNNING",
        "for the ingestor to report RUNNING",
        10,
    )


def test_stop_releases_kafka_and_start_brings_it_back(pipeline: Pipeline) -> None:
    api = pipeline.api
    assert api.command("exchange-ingestor", "stop").status_code == 202
    try:
        wait_for(
            lambda: (
                pipeline.health("exchange-ingestor").get("state") == "STOPPED"
                and pipeline.health("exchange-ingestor").get("kafka_connected") is False
            ),
            "for the ingestor to stop and close its producer",
            30,
        )
        status = api.component("exchange-ingestor")
        assert status["observed_state"] == "STOPPED" and status["in_sync"]
        assert pipeline.health("exchange-ingestor")["status"] == "ok"  # stopped on purpose
        polls = pipeline.simulator_requests("exchanges")
    finally:
        assert api.command("exchange-ingestor", "start").status_code == 202
    wait_for(
        lambda: pipeline.simulator_requests("exchanges") > polls, "for polls to start again", 30
    )
    generation = api.component("exchange-ingestor")["restart_generation"]
    restarted = api.command("exchange-ingestor", "restart")
    assert restarted.status_code == 202
    assert restarted.json()["restart_generation"] == generation + 1
    wait_for(
        lambda: (
            "restarting (requested by client 127.0.0.1)"
            in pipeline.services["exchange-ingestor"].log_text()
        ),
        "for the ingestor to restart",
        30,
    )


def test_no_secret_in_any_log_or_answer(pipeline: Pipeline) -> None:
    """The token and the API key, in use, show nowhere: not after a command with the token, one
    with a wrong token, or one with the token pasted into its body."""
    api = pipeline.api
    assert api.command("asset-ingestor", "resume").status_code == 202
    refused = {
        "wrong token": api.command("asset-ingestor", "pause", token="x" * 32).text,
        "token in a body": api.command("asset-ingestor", "resume", json={"t": api.token}).text,
    }
    outputs = {**pipeline.outputs(), **refused}
    assert "coinstream_component_state" in outputs["control /metrics"]
    assert pipeline.secret_leaks(outputs) == []
