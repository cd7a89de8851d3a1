"""A Kafka that wants SASL, as a managed one does: the security settings reach every client.

One real broker whose client listener takes SASL/PLAIN only. The same settings
(``COINSTREAM_KAFKA_SECURITY_PROTOCOL``, ``..._SASL_*``) let the admin client create the
topics, the ingestors' producer write, the worker's Spark source read on its executors, the
worker's offset committer commit and the control service measure lag; a wrong password is
refused.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator

import pytest
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from deploy.local.errors import StackError
from deploy.local.kafka_broker import KafkaNode, kafka_java_command
from deploy.local.readiness import wait_until
from services.control.consumer_lag import measure_lag
from services.stream_worker.jars import spark_kafka_jars
from services.stream_worker.kafka_source import kafka_source_options
from services.stream_worker.offsets import OffsetCommitter
from services.stream_worker.spark import build_spark_session
from shared.kafka import create_producer, ensure_topics, kafka_answers, pipeline_topics
from shared.settings import Settings
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import ManagedProcess, settings_from

PORT = offset_port(21592)
CONTROLLER_PORT = offset_port(21593)
PASSWORD = 's3cret "quoted" pass'
SUFFIX = uuid.uuid4().hex[:8]
SASL = {
    **TEST_ENVIRONMENT,
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{PORT}",
    "COINSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "COINSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
    "COINSTREAM_KAFKA_SASL_USERNAME": "coinstream",
    "COINSTREAM_KAFKA_SASL_PASSWORD": PASSWORD,
    "COINSTREAM_TOPIC_ASSETS": f"test.sasl.assets.{SUFFIX}",
    "COINSTREAM_TOPIC_EXCHANGES": f"test.sasl.exchanges.{SUFFIX}",
    "COINSTREAM_TOPIC_DEADLETTER": f"test.sasl.deadletter.{SUFFIX}",
    "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-sasl-{SUFFIX}",
}


def jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sasl_broker_config(node: KafkaNode) -> str:
    """A single KRaft node whose client listener takes SASL/PLAIN with two users."""
    users = f"user_admin={jaas_quoted('admin-secret')} user_coinstream={jaas_quoted(PASSWORD)}"
    # A properties file reads a backslash as an escape of its own: keep the JAAS ones.
    users = users.replace("\\", "\\\\")
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{CONTROLLER_PORT}",
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{PORT},CONTROLLER://127.0.0.1:{CONTROLLER_PORT}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{PORT}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="admin" password="admin-secret" {users};',
            f"log.dirs={node.data_dir}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


@pytest.fixture(scope="module")
def sasl_settings() -> Iterator[Settings]:
    home = TEST_STATE_DIR / "kafka-sasl"
    shutil.rmtree(home, ignore_errors=True)
    settings = settings_from(SASL)
    node = KafkaNode(
        1,
        "127.0.0.1",
        PORT,
        CONTROLLER_PORT,
        home / "data",
        home / "server.properties",
        home / "logs",
    )
    node.config_path.parent.mkdir(parents=True)
    node.config_path.write_text(sasl_broker_config(node))
    java = kafka_java_command(settings, node, "kafka.tools.StorageTool")
    formatted = ManagedProcess(
        "kafka-sasl-format",
        [
            *java,
            "format",
            "--cluster-id=c2FzbC10ZXN0LWNsdXN0ZXI",
            "--config",
            str(node.config_path),
        ],
        {},
        home,
    )
    formatted.start()
    assert formatted.process is not None and formatted.process.wait(60) == 0, formatted.log_tail()
    broker = ManagedProcess(
        "kafka-sasl",
        kafka_java_command(settings, node, "kafka.Kafka", str(node.config_path)),
        {},
        TEST_STATE_DIR / "logs",
    )
    broker.start()
    try:
        wait_until(lambda: asyncio.run(kafka_answers(settings)), "the SASL broker", 90)
    except StackError as error:
        broker.stop()
        pytest.fail(f"{error}\n{broker.log_tail()}")
    yield settings
    broker.stop()


async def produce(settings: Settings, count: int) -> None:
    await ensure_topics(settings, pipeline_topics(settings))
    producer = create_producer(settings, client_id="sasl-test")
    await producer.start()
    try:
        for number in range(count):
            await producer.send(settings.topic_assets, b"{}", key=f"coin-{number}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_every_client_connects_with_the_security_settings(sasl_settings: Settings) -> None:
    asyncio.run(produce(sasl_settings, 30))

    # The worker's Spark source, reading on an executor with the options it streams with.
    spark = build_spark_session(
        sasl_settings.model_copy(update={"spark_master": "local[1]"}),
        "sasl-test",
        spark_kafka_jars(sasl_settings),
    )
    try:
        options = kafka_source_options(sasl_settings)
        del options["maxOffsetsPerTrigger"]  # a streaming option; this is one batch read
        read = spark.read.format("kafka").options(**options).load()
        assert read.where(read.topic == sasl_settings.topic_assets).count() == 30
    finally:
        spark.stop()

    committer = OffsetCommitter(sasl_settings)
    try:
        committer.commit({(sasl_settings.topic_assets, 0): 1})
    finally:
        committer.close()
    report = asyncio.run(
        measure_lag(
            sasl_settings, sasl_settings.stream_consumer_group, [sasl_settings.topic_assets]
        )
    )
    assert report.topics[0].exists and report.lag_records == 30 - 1


def test_a_wrong_password_is_refused(sasl_settings: Settings) -> None:
    wrong = sasl_settings.model_copy(update={"kafka_sasl_password": SecretStr("not-it")})
    assert not asyncio.run(kafka_answers(wrong))
    with pytest.raises((KafkaError, OSError)):
        asyncio.run(ensure_topics(wrong, pipeline_topics(wrong)))
