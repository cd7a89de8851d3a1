"""The local Kafka: one KRaft node (broker and controller) per bootstrap server, from the jars
setup fetched.

One bootstrap server (the default) is the single node of ``make run`` and the tests. Three, say
``127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292``, make a replicated cluster of three combined
nodes: node N listens on the Nth server, its controller on ``kafka_controller_port`` + N-1, and
the three form the controller quorum, so any one of them can die without the cluster stopping.
Clients are given every server, so they find the cluster whichever node is down.

``kafka_broker_command`` checks what would make a node fail obscurely (a busy port, missing
jars, a state folder Kafka cannot use), formats its storage on the first start, and returns the
command line that ``python -m deploy.local.stack kafka [--node N]`` replaces itself with.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from deploy.local.errors import StackError
from deploy.local.prerequisites import require_free_port, require_java
from shared.settings import PROJECT_ROOT, Settings

KAFKA_LOG4J_CONFIG = PROJECT_ROOT / "deploy" / "local" / "kafka" / "log4j2.properties"
INTERNAL_TOPIC_REPLICAS = 3
"""Replicas of Kafka's own topics (consumer offsets, transactions) on a cluster this large."""


@dataclass(frozen=True)
class KafkaNode:
    """One local KRaft node: where it listens and where it keeps its files."""

    node_id: int
    host: str
    port: int
    controller_port: int
    data_dir: Path
    config_path: Path
    logs_dir: Path


def kafka_jars_dir(settings: Settings) -> Path:
    return settings.cache_dir / "jars" / "kafka-broker"


def kafka_cluster_dir(settings: Settings) -> Path:
    """Where the nodes of a several-node cluster keep their state (one folder each)."""
    return settings.state_dir / "kafka-cluster"


def local_kafka_nodes(settings: Settings) -> list[KafkaNode]:
    """One node per bootstrap server, numbered from 1 in the order the servers are listed."""
    servers = [server.strip() for server in settings.kafka_bootstrap_servers.split(",")]
    if len(servers) == 1:
        host, port = settings.kafka_listener
        return [
            KafkaNode(
                node_id=1,
                host=host,
                port=port,
                controller_port=settings.kafka_controller_port,
                data_dir=settings.state_dir / "kafka",
                config_path=settings.state_dir / "kafka-server.properties",
                logs_dir=settings.state_dir / "kafka-logs",
            )
        ]
    nodes = []
    for number, server in enumerate(servers, start=1):
        host, _, port_text = server.rpartition(":")
        if not host or not port_text.isdigit():
            raise StackError(
                f"COINSTREAM_KAFKA_BOOTSTRAP_SERVERS entry {server!r} is not host:port; "
                "each local Kafka node listens on one of them"
            )
        home = kafka_cluster_dir(settings) / f"node-{number}"
        nodes.append(
            KafkaNode(
                node_id=number,
                host=host,
                port=int(port_text),
                controller_port=settings.kafka_controller_port + number - 1,
                data_dir=home / "data",
                config_path=home / "server.properties",
                logs_dir=home / "logs",
            )
        )
    return nodes


def kafka_node(settings: Settings, number: int) -> KafkaNode:
    nodes = local_kafka_nodes(settings)
    if not 1 <= number <= len(nodes):
        raise StackError(
            f"there is no Kafka node {number}: COINSTREAM_KAFKA_BOOTSTRAP_SERVERS names "
            f"{len(nodes)} (one node per server)"
        )
    return nodes[number - 1]


def _read_properties(path: Path) -> dict[str, str]:
    properties = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties


def kafka_storage_is_formatted(node: KafkaNode) -> bool:
    """True for formatted storage, False for none; StackError for storage Kafka cannot use."""
    data_dir = node.data_dir
    if not data_dir.exists() or not any(data_dir.iterdir()):
        return False
    meta = data_dir / "meta.properties"
    problem = None
    if not meta.is_file():
        problem = "it has files but no meta.properties"
    else:
        properties = _read_properties(meta)
        if not properties.get("cluster.id") or properties.get("node.id") != str(node.node_id):
            problem = (
                f"its meta.properties has no cluster.id or a node.id other than {node.node_id}"
            )
    if problem:
        raise StackError(
            f"the Kafka state folder {data_dir} is corrupt ({problem}); run `make clean-state` "
            "to start again from empty state (this deletes local Kafka and BigQuery data)"
        )
    return True


def kafka_server_properties(settings: Settings, node: KafkaNode) -> Path:
    """Write the node's config into its state folder and return its path."""
    nodes = local_kafka_nodes(settings)
    voters = ",".join(f"{each.node_id}@{each.host}:{each.controller_port}" for each in nodes)
    internal_replicas = min(INTERNAL_TOPIC_REPLICAS, len(nodes))
    # With three replicas, two must hold a transaction marker: one node may be down.
    internal_min_isr = max(1, internal_replicas - 1)
    node.config_path.parent.mkdir(parents=True, exist_ok=True)
    node.config_path.write_text(
        "\n".join(
            [
                "# Written by deploy/local/kafka_broker.py from coinstream settings; "
                "edits are lost.",
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://{node.host}:{node.port},"
                f"CONTROLLER://{node.host}:{node.controller_port}",
                f"advertised.listeners=PLAINTEXT://{node.host}:{node.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={node.data_dir}",
                "num.partitions=3",
                f"offsets.topic.replication.factor={internal_replicas}",
                f"transaction.state.log.replication.factor={internal_replicas}",
                f"transaction.state.log.min.isr={internal_min_isr}",
                f"share.coordinator.state.topic.replication.factor={internal_replicas}",
                f"share.coordinator.state.topic.min.isr={internal_min_isr}",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                # Never elect a replica that missed acknowledged records: an outage rather than
                # a loss (Kafka's default, stated because the guarantee rests on it).
                "unclean.leader.election.enable=false",
                "",
            ]
        )
    )
    return node.config_path


def kafka_java_command(
    settings: Settings, node: KafkaNode, main_class: str, *args: str
) -> list[str]:
    jars = kafka_jars_dir(settings)
    if not any(jars.glob("kafka_2.13-*.jar")):
        raise StackError(f"the Kafka broker jars are missing from {jars}; run `make setup` first")
    return [
        require_java(),
        f"-Xms{settings.kafka_heap}",
        f"-Xmx{settings.kafka_heap}",
        *shlex.split(settings.kafka_jvm_options),
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={node.logs_dir}",
        "-cp",
        f"{jars}/*",
        main_class,
        *args,
    ]


def _new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def kafka_cluster_id(settings: Settings) -> str:
    """A new id for a single node; for a cluster, the one id every node is formatted with.

    The nodes of ``make run`` start at the same moment, so the first to get here writes the
    id (exclusive create) and the others read it.
    """
    if len(local_kafka_nodes(settings)) == 1:
        return _new_cluster_id()
    path = kafka_cluster_dir(settings) / "cluster-id"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        cluster_id = path.read_text().strip()
        if not cluster_id:
            raise StackError(
                f"the Kafka cluster id file {path} is empty; run `make clean-state` to start "
                "again from empty state (this deletes local Kafka and BigQuery data)"
            ) from None
        return cluster_id
    cluster_id = _new_cluster_id()
    with os.fdopen(descriptor, "w") as file:
        file.write(cluster_id + "\n")
    return cluster_id


def format_kafka_storage(settings: Settings, node: KafkaNode, config: Path) -> None:
    result = subprocess.run(
        kafka_java_command(
            # The id may start with '-', so it must be glued to its option.
            settings,
            node,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={kafka_cluster_id(settings)}",
            "--config",
            str(config),
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise StackError(
            f"formatting Kafka storage in {node.data_dir} failed: "
            f"{detail[-1] if detail else 'no output'}"
        )
    print(f"kafka: formatted new storage in {node.data_dir}", flush=True)


def kafka_broker_command(settings: Settings, number: int = 1) -> list[str]:
    """Check ports and state, format storage on first start, and return node ``number``'s argv."""
    node = kafka_node(settings, number)
    require_free_port(node.host, node.port, "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    require_free_port(node.host, node.controller_port, "COINSTREAM_KAFKA_CONTROLLER_PORT")
    config = kafka_server_properties(settings, node)
    if not kafka_storage_is_formatted(node):
        format_kafka_storage(settings, node, config)
    return kafka_java_command(settings, node, "kafka.Kafka", str(config))
