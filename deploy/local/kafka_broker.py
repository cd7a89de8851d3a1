"""The local Kafka broker: one KRaft node (broker and controller) from the jars setup fetched.

``kafka_broker_command`` checks what would make the broker fail obscurely (a busy port, missing
jars, a state folder Kafka cannot use), formats storage on the first start, and returns the
command line that ``python -m deploy.local.stack kafka`` replaces itself with.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from deploy.local.errors import StackError
from deploy.local.prerequisites import require_free_port, require_java
from shared.settings import PROJECT_ROOT, Settings

KAFKA_LOG4J_CONFIG = PROJECT_ROOT / "deploy" / "local" / "kafka" / "log4j2.properties"


def kafka_jars_dir(settings: Settings) -> Path:
    return settings.cache_dir / "jars" / "kafka-broker"


def kafka_data_dir(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def _read_properties(path: Path) -> dict[str, str]:
    properties = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties


def kafka_storage_is_formatted(settings: Settings) -> bool:
    """True for formatted storage, False for none; StackError for storage Kafka cannot use."""
    data_dir = kafka_data_dir(settings)
    if not data_dir.exists() or not any(data_dir.iterdir()):
        return False
    meta = data_dir / "meta.properties"
    problem = None
    if not meta.is_file():
        problem = "it has files but no meta.properties"
    else:
        properties = _read_properties(meta)
        if not properties.get("cluster.id") or properties.get("node.id") != "1":
            problem = "its meta.properties has no cluster.id or a node.id other than 1"
    if problem:
        raise StackError(
            f"the Kafka state folder {data_dir} is corrupt ({problem}); run `make clean-state` "
            "to start again from empty state (this deletes local Kafka and BigQuery data)"
        )
    return True


def kafka_server_properties(settings: Settings) -> Path:
    """Write the broker's config into the state folder and return its path."""
    host, port = settings.kafka_listener
    controller = settings.kafka_controller_port
    config = settings.state_dir / "kafka-server.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "\n".join(
            [
                "# Written by deploy/local/kafka_broker.py from coinstream settings; "
                "edits are lost.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{controller}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={kafka_data_dir(settings)}",
                "num.partitions=3",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )
    )
    return config


def kafka_java_command(settings: Settings, main_class: str, *args: str) -> list[str]:
    jars = kafka_jars_dir(settings)
    if not any(jars.glob("kafka_2.13-*.jar")):
        raise StackError(f"the Kafka broker jars are missing from {jars}; run `make setup` first")
    return [
        require_java(),
        f"-Xms{settings.kafka_heap}",
        f"-Xmx{settings.kafka_heap}",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={settings.state_dir / 'kafka-logs'}",
        "-cp",
        f"{jars}/*",
        main_class,
        *args,
    ]


def format_kafka_storage(settings: Settings, config: Path) -> None:
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    result = subprocess.run(
        kafka_java_command(
            # The id may start with '-', so it must be glued to its option.
            settings,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
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
            f"formatting Kafka storage in {kafka_data_dir(settings)} failed: "
            f"{detail[-1] if detail else 'no output'}"
        )
    print(f"kafka: formatted new storage in {kafka_data_dir(settings)}", flush=True)


def kafka_broker_command(settings: Settings) -> list[str]:
    """Check ports and state, format storage on first start, and return the broker's argv."""
    host, port = settings.kafka_listener
    require_free_port(host, port, "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    require_free_port(host, settings.kafka_controller_port, "COINSTREAM_KAFKA_CONTROLLER_PORT")
    config = kafka_server_properties(settings)
    if not kafka_storage_is_formatted(settings):
        format_kafka_storage(settings, config)
    return kafka_java_command(settings, "kafka.Kafka", str(config))
