"""Beyond one machine, by settings alone: the Spark master and executors, a several-node local
Kafka, replicated topics, a managed cluster's security, and what the control service makes of
a cluster that lost a broker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from deploy.local.kafka_broker import kafka_server_properties, local_kafka_nodes
from deploy.local.supervisor import local_processes
from services.control.kafka_cluster import replication_health
from services.stream_worker.kafka_source import kafka_source_options
from services.stream_worker.spark import cluster_config
from services.stream_worker.startup import checkpoint_bound_to_this_machine
from shared.kafka import PartitionReplicas, kafka_client_config, pipeline_topics
from shared.settings import Settings, describe_settings_error

THREE_NODES = "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"


@pytest.fixture(autouse=True)
def no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("COINSTREAM_")]:
        monkeypatch.delenv(name)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


# --- Spark ---------------------------------------------------------------------------------------


def test_the_master_is_local_unless_a_cluster_is_named() -> None:
    assert settings().spark_master_url == "local[2]"
    assert not settings().spark_runs_on_cluster
    assert cluster_config(settings()) == {}
    local_cluster = settings(local_spark_workers=2, local_spark_master_port=7177)
    assert local_cluster.spark_master_url == "spark://127.0.0.1:7177"
    named = settings(spark_master="k8s://https://10.0.0.1:443", local_spark_workers=2)
    assert named.spark_master_url == "k8s://https://10.0.0.1:443"


@pytest.mark.parametrize(
    "master", ["local", "local[4]", "local[*]", "spark://a:7077,b:7077", "yarn", "k8s://https://x"]
)
def test_every_kind_of_master_is_accepted(master: str) -> None:
    assert settings(spark_master=master).spark_master_url == master


def test_an_unknown_master_is_refused_by_name() -> None:
    with pytest.raises(ValidationError) as raised:
        settings(spark_master="spark-cluster:7077")
    assert "COINSTREAM_SPARK_MASTER must be local[N], spark://host:port" in (
        describe_settings_error(raised.value)
    )


def test_executors_are_sized_for_each_cluster_manager() -> None:
    sizing = {"spark_executor_memory": "2g", "spark_executor_cores": 2}
    standalone = cluster_config(settings(spark_master="spark://m:7077", **sizing))
    assert standalone == {
        "spark.executor.memory": "2g",
        "spark.executor.cores": "2",
        "spark.cores.max": "4",  # two executors of two cores
    }
    kubernetes = cluster_config(settings(spark_master="k8s://https://x", **sizing))
    assert kubernetes["spark.executor.instances"] == "2" and "spark.cores.max" not in kubernetes


def test_spark_conf_is_read_as_json() -> None:
    assert settings(spark_conf='{"spark.driver.host": "10.0.0.5"}').spark_conf == {
        "spark.driver.host": "10.0.0.5"
    }
    with pytest.raises(ValidationError, match="COINSTREAM_SPARK_CONF must be a JSON object"):
        settings(spark_conf="spark.driver.host=10.0.0.5")


def test_a_local_checkpoint_is_flagged_only_on_a_remote_cluster() -> None:
    assert not checkpoint_bound_to_this_machine(settings())
    assert not checkpoint_bound_to_this_machine(settings(local_spark_workers=2))
    remote = settings(spark_master="spark://spark-master:7077")
    assert checkpoint_bound_to_this_machine(remote)
    assert not checkpoint_bound_to_this_machine(
        settings(spark_master="yarn", stream_checkpoint_location="gs://bucket/checkpoint")
    )


# --- Kafka: replication and security ---------------------------------------------------------


def test_record_topics_get_min_insync_replicas() -> None:
    topics = pipeline_topics(settings(topic_replication_factor=3, topic_min_insync_replicas=2))
    assert {topic.replication_factor for topic in topics} == {3}
    assert {topic.topic_configs()["min.insync.replicas"] for topic in topics} == {"2"}


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValidationError, match="no record could ever be stored"):
        settings(topic_replication_factor=1, topic_min_insync_replicas=2)


def test_sasl_needs_a_user_and_a_password() -> None:
    with pytest.raises(ValidationError, match="COINSTREAM_KAFKA_SASL_USERNAME"):
        settings(kafka_security_protocol="SASL_SSL")


def test_plaintext_clients_get_no_security_options() -> None:
    config = kafka_client_config(settings())
    assert config == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert kafka_source_options(settings())["kafka.security.protocol"] == "PLAINTEXT"


def test_sasl_ssl_reaches_aiokafka_and_spark_alike(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    managed = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="coinstream",
        kafka_sasl_password='pa"ss',
    )
    config = kafka_client_config(managed)
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "coinstream"
    assert config["sasl_plain_password"] == 'pa"ss'
    assert config["ssl_context"] is not None
    options = kafka_source_options(managed.model_copy(update={"kafka_ssl_ca_file": ca}))
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="coinstream" password="pa\\"ss";'
    )
    # Inline, not a path: the executors reading Kafka do not have the driver's files.
    assert options["kafka.ssl.truststore.type"] == "PEM"
    assert options["kafka.ssl.truststore.certificates"] == ca.read_text()
    assert 'pa"ss' not in repr(managed)


# --- the local stack ---------------------------------------------------------------------------


def test_one_local_kafka_node_per_bootstrap_server(tmp_path: Path) -> None:
    cluster = settings(kafka_bootstrap_servers=THREE_NODES, state_dir=tmp_path)
    nodes = local_kafka_nodes(cluster)
    assert [(node.node_id, node.port, node.controller_port) for node in nodes] == [
        (1, 9092, 9093),
        (2, 9192, 9094),
        (3, 9292, 9095),
    ]
    config = kafka_server_properties(cluster, nodes[1]).read_text()
    assert "node.id=2" in config
    assert "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095" in config
    assert "offsets.topic.replication.factor=3" in config
    assert "unclean.leader.election.enable=false" in config
    single = local_kafka_nodes(settings(state_dir=tmp_path))
    assert [node.data_dir for node in single] == [tmp_path / "kafka"]  # as before clusters


def test_make_run_starts_the_clusters_the_settings_ask_for() -> None:
    assert "kafka" in local_processes(settings())
    assert "spark-master" not in local_processes(settings())
    processes = local_processes(
        settings(kafka_bootstrap_servers=THREE_NODES, local_spark_workers=2)
    )
    assert "kafka" not in processes
    assert processes["kafka-3"].endswith("-m deploy.local.stack kafka --node 3")
    assert processes["spark-master"].endswith("-m deploy.local.stack spark-master")
    assert processes["spark-worker-2"].endswith("-m deploy.local.stack spark-worker --node 2")


# --- the control service's view of a cluster -----------------------------------------------------


def partition(number: int, leader: int | None, in_sync: tuple[int, ...]) -> PartitionReplicas:
    return PartitionReplicas(number, leader, (1, 2, 3), in_sync)


def test_a_whole_cluster_is_ok() -> None:
    health = replication_health([1, 2, 3], [partition(0, 1, (1, 2, 3))], 2)
    assert health.status == "ok" and health.detail is None


def test_a_lost_broker_degrades_the_cluster_and_is_named() -> None:
    health = replication_health([1, 3], [partition(0, 3, (1, 3)), partition(1, 1, (1, 3))], 2)
    assert health.status == "degraded"
    assert health.missing_brokers == [2]
    assert health.under_replicated_partitions == 2 and health.unwritable_partitions == 0
    assert health.detail is not None and "broker(s) 2 not alive" in health.detail


def test_too_few_in_sync_replicas_make_the_cluster_unavailable() -> None:
    health = replication_health([3], [partition(0, 3, (3,)), partition(1, None, ())], 2)
    assert health.status == "unavailable"
    assert health.missing_brokers == [1, 2] and health.unwritable_partitions == 2
