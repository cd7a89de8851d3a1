"""The native local stack: a real Kafka broker and the BigQuery emulator as local processes.

For machines without Docker, and for the test suite. ``make run`` runs the whole pipeline
through honcho; tests start the same commands as subprocesses. Subcommands:

    python -m deploy.local.stack setup      fetch jars (Maven), place DuckDB extensions
    python -m deploy.local.stack run        the whole local pipeline under honcho (`make run`)
    python -m deploy.local.stack kafka      run the broker in the foreground (formats on first run)
    python -m deploy.local.stack bigquery   run the BigQuery emulator in the foreground
    python -m deploy.local.stack prometheus run Prometheus on the local ports' config
    python -m deploy.local.stack wait       wait until both answer, then exit
    python -m deploy.local.stack watch      wait for every process, report ready, then report
                                            each change in health

Every problem a user can fix (no Java, a port in use, a corrupt state folder) ends the command
with one line saying what is wrong and what to do, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import logging
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError

from shared.kafka import kafka_answers
from shared.settings import PROJECT_ROOT, Settings, describe_settings_error

MAVEN_DIR = PROJECT_ROOT / "deploy" / "local" / "maven"
KAFKA_LOG4J_CONFIG = PROJECT_ROOT / "deploy" / "local" / "kafka" / "log4j2.properties"
PROMETHEUS_DIR = PROJECT_ROOT / "deploy" / "prometheus"
DUCKDB_EXTENSIONS = ("spatial", "avro")
EXIT_USER_ERROR = 2


class StackError(Exception):
    """A problem the user can fix; its message says what is wrong and what to do."""


# --- paths -----------------------------------------------------------------------------------


def kafka_jars_dir(settings: Settings) -> Path:
    return settings.cache_dir / "jars" / "kafka-broker"


def spark_kafka_jars_dir(settings: Settings) -> Path:
    return settings.cache_dir / "jars" / "spark-kafka"


def kafka_data_dir(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def bigquery_data_dir(settings: Settings) -> Path:
    return settings.state_dir / "bigquery"


def bigquery_home_dir(settings: Settings) -> Path:
    """A HOME of the emulator's own, so that its DuckDB extensions stay inside the project."""
    return settings.state_dir / "bigquery-home"


def spark_kafka_jars(settings: Settings) -> list[Path]:
    """The jars Spark needs for its Kafka source, as fetched by ``setup``."""
    jars = sorted(spark_kafka_jars_dir(settings).glob("*.jar"))
    if not jars:
        raise StackError(
            f"the Spark Kafka connector jars are missing from {spark_kafka_jars_dir(settings)}; "
            "run `make setup` (it needs network access to Maven Central once)"
        )
    return jars


# --- setup -----------------------------------------------------------------------------------


def require_command(name: str, purpose: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` was not found on PATH; {purpose}. {install_hint}")
    return path


def require_java() -> str:
    return require_command(
        "java",
        "Java 17 or newer runs the local Kafka broker and Spark",
        "Install it (Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`) and retry.",
    )


def _pom_fingerprint(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _jar_artifact_name(jar_name: str) -> str:
    """``kafka-clients-3.9.2.jar`` -> ``kafka-clients``."""
    match = re.match(r"^(.*?)-\d[\w.\-]*\.jar$", jar_name)
    return match.group(1) if match else jar_name.removesuffix(".jar")


def fetch_maven_jars(pom: Path, destination: Path, skip_artifacts: Collection[str] = ()) -> None:
    """Copy a pom's runtime dependencies into ``destination``, once per version of the pom.

    A fingerprint of the pom next to the jars makes a re-run free and a pom change refetch.
    ``skip_artifacts`` leaves out jars another classpath already provides.
    """
    stamp = destination / ".pom-sha256"
    fingerprint = _pom_fingerprint(pom)
    if stamp.exists() and stamp.read_text() == fingerprint:
        return
    maven = require_command(
        "mvn",
        "Maven fetches the Kafka broker and Spark connector jars from Maven Central",
        "Install it (Debian/Ubuntu: `apt-get install maven`) and retry.",
    )
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    print(f"setup: fetching {pom.parent.name} jars from Maven Central ...", flush=True)
    result = subprocess.run(
        [
            maven,
            "--batch-mode",
            "--quiet",
            "--settings",
            str(MAVEN_DIR / "settings.xml"),
            "--file",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
        first_error = errors[0] if errors else result.stderr.strip()[:300]
        raise StackError(
            f"Maven could not fetch the jars of {pom}: {first_error} (is Maven Central reachable?)"
        )
    for jar in staging.glob("*.jar"):
        if _jar_artifact_name(jar.name) in skip_artifacts:
            jar.unlink()
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    stamp.write_text(fingerprint)


def pyspark_jar_artifacts() -> set[str]:
    """Artifact names of the jars pyspark ships, which the connector must not duplicate."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    return {_jar_artifact_name(jar.name) for jar in jars.glob("*.jar")}


def duckdb_extensions_dir(settings: Settings) -> Path:
    import duckdb

    version = "v" + duckdb.__version__
    return bigquery_home_dir(settings) / ".duckdb" / "extensions" / version / "linux_amd64"


def place_duckdb_extensions(settings: Settings) -> None:
    """Copy the extensions the emulator loads at start from their PyPI packages.

    The emulator runs ``INSTALL spatial``, which would download; with the files in place
    DuckDB finds them and needs no network.
    """
    import duckdb

    target = duckdb_extensions_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    version = "v" + duckdb.__version__
    for name in DUCKDB_EXTENSIONS:
        package = __import__(f"duckdb_extension_{name}")
        package_dir = Path(str(package.__file__)).parent
        source = package_dir / "extensions" / version / f"{name}.duckdb_extension"
        if not source.exists():
            raise StackError(
                f"{source} is missing: duckdb-extension-{name} does not match duckdb "
                f"{duckdb.__version__}; run `make setup` to reinstall the locked packages"
            )
        destination = target / source.name
        if not destination.exists() or destination.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, destination)


def setup(settings: Settings) -> None:
    """Everything the local stack needs before it can run offline."""
    require_java()
    fetch_maven_jars(MAVEN_DIR / "kafka-broker" / "pom.xml", kafka_jars_dir(settings))
    fetch_maven_jars(
        MAVEN_DIR / "spark-kafka" / "pom.xml",
        spark_kafka_jars_dir(settings),
        skip_artifacts=pyspark_jar_artifacts(),
    )
    place_duckdb_extensions(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    print(f"setup: done (jars in {settings.cache_dir}, state in {settings.state_dir})", flush=True)


# --- checks before start ---------------------------------------------------------------------


def require_free_port(host: str, port: int, setting: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves do: only a live listener, not TIME_WAIT, makes bind fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} on {host} is already in use ({setting}); stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it) or set {setting} to a free port"
            ) from None


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


def check_bigquery_state(settings: Settings) -> None:
    """Open the emulator's DuckDB file once, so that a corrupt file gets a clear message."""
    import duckdb

    database = bigquery_data_dir(settings) / "bqemulator.duckdb"
    if not database.exists():
        return
    try:
        duckdb.connect(str(database)).close()
    except duckdb.Error as error:
        reason = str(error).splitlines()[0]
        raise StackError(
            f"the BigQuery emulator state {database} is corrupt ({reason}); run "
            "`make clean-state` to start again from empty state (this deletes local data)"
        ) from None


# --- Kafka -----------------------------------------------------------------------------------


def kafka_server_properties(settings: Settings) -> Path:
    """Write the broker's config into the state folder and return its path."""
    host, port = settings.kafka_listener
    controller = settings.kafka_controller_port
    config = settings.state_dir / "kafka-server.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "\n".join(
            [
                "# Written by deploy/local/stack.py from coinstream settings; edits are lost.",
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


# --- BigQuery emulator -----------------------------------------------------------------------


def bigquery_emulator_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """Check ports and state and return the emulator's argv and environment."""
    port = settings.bigquery_emulator_port
    require_free_port("127.0.0.1", port, "COINSTREAM_BIGQUERY_EMULATOR_URL")
    require_free_port(
        "127.0.0.1", settings.bigquery_emulator_grpc_port, "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT"
    )
    place_duckdb_extensions(settings)
    data_dir = bigquery_data_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    check_bigquery_state(settings)
    executable = Path(sys.executable).parent / "bqemulator"
    argv = [
        str(executable),
        "start",
        "--persistent",
        "--data-dir",
        str(data_dir),
        "--project",
        settings.bigquery_emulator_project,
        "--rest-host",
        settings.bind_host,
        "--grpc-host",
        settings.bind_host,
        "--rest-port",
        str(port),
        "--grpc-port",
        str(settings.bigquery_emulator_grpc_port),
        "--log-format",
        "json",
        "--log-level",
        "warning",
    ]
    environment = {**os.environ, "HOME": str(bigquery_home_dir(settings))}
    return argv, environment


# --- Prometheus --------------------------------------------------------------------------------


def prometheus_data_dir(settings: Settings) -> Path:
    return settings.state_dir / "prometheus"


def local_scrape_ports(settings: Settings) -> dict[str, int]:
    """The local port of each job in deploy/prometheus/prometheus.yml."""
    return {
        "coinstream-control": settings.control_port,
        "coinstream-asset-ingestor": settings.asset_ingestor_port,
        "coinstream-exchange-ingestor": settings.exchange_ingestor_port,
        "coinstream-stream-worker": settings.stream_worker_port,
        "prometheus": settings.prometheus_port,
    }


def prometheus_config(settings: Settings) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with every target on 127.0.0.1 at the local port.

    Derived rather than written twice, so the local and compose configs scrape the same jobs.
    """
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    ports = local_scrape_ports(settings)
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name not in ports:
            raise StackError(
                f"deploy/prometheus/prometheus.yml has a job {name!r} with no local port; add "
                "it to local_scrape_ports in deploy/local/stack.py"
            )
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
    config["rule_files"] = [str(PROMETHEUS_DIR / rules) for rules in config.get("rule_files", [])]
    return config


def write_prometheus_config(settings: Settings) -> Path:
    path = prometheus_data_dir(settings) / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by deploy/local/stack.py from deploy/prometheus/prometheus.yml and coinstream "
        "settings; edits are lost.\n"
    )
    path.write_text(header + yaml.safe_dump(prometheus_config(settings), sort_keys=False))
    return path


def prometheus_command(settings: Settings) -> list[str]:
    """Check the binary and port, write the local config, and return Prometheus' argv."""
    binary = require_command(
        "prometheus",
        "Prometheus scrapes the services' metrics and evaluates the alerting rules",
        "Run `make setup` (it installs Debian's `prometheus` package; as root), or "
        "`sudo apt-get install prometheus`, and retry.",
    )
    require_free_port("127.0.0.1", settings.prometheus_port, "COINSTREAM_PROMETHEUS_PORT")
    config = write_prometheus_config(settings)
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={prometheus_data_dir(settings) / 'data'}",
        "--storage.tsdb.retention.time=7d",
        f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        "--log.level=warn",
    ]


def prometheus_answers(settings: Settings, timeout: float = 2.0) -> bool:
    return http_answers(f"http://127.0.0.1:{settings.prometheus_port}/-/ready", timeout)


# --- readiness -------------------------------------------------------------------------------


def http_answers(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def bigquery_emulator_answers(settings: Settings, timeout: float = 2.0) -> bool:
    """True when the emulator lists the datasets of its project."""
    return http_answers(
        f"{settings.bigquery_emulator_url}/bigquery/v2/projects/"
        f"{settings.bigquery_emulator_project}/datasets",
        timeout,
    )


def wait_until(
    check: Callable[[], bool], what: str, timeout: float, interval: float = 0.25
) -> float:
    """Poll ``check`` until it holds; return the seconds it took, or raise StackError."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise StackError(f"{what} did not become ready within {timeout:.0f} s; see its log")
        time.sleep(interval)


def wait_for_kafka(
    settings: Settings, timeout: float = 60.0, still_starting: Callable[[], bool] = lambda: True
) -> float:
    """Wait for the broker; ``still_starting`` returning False (its process died) ends the wait."""
    what = f"Kafka at {settings.kafka_bootstrap_servers}"

    def answers() -> bool:
        if not still_starting():
            raise StackError(f"{what} exited while starting; see its log")
        return asyncio.run(kafka_answers(settings))

    return wait_until(answers, what, timeout)


def wait_for_bigquery_emulator(
    settings: Settings, timeout: float = 60.0, still_starting: Callable[[], bool] = lambda: True
) -> float:
    """Wait for the emulator; ``still_starting`` returning False ends the wait."""
    what = f"the BigQuery emulator at {settings.bigquery_emulator_url}"

    def answers() -> bool:
        if not still_starting():
            raise StackError(f"{what} exited while starting; see its log")
        return bigquery_emulator_answers(settings)

    return wait_until(answers, what, timeout)


def service_health_checks(settings: Settings) -> dict[str, tuple[str, Callable[[], bool]]]:
    """What ``watch`` reports on: each process of ``run`` after the broker and the emulator."""
    host = "127.0.0.1"
    checks: dict[str, tuple[str, Callable[[], bool]]] = {}
    services = []
    if settings.uses_coincap_simulator:
        services.append(("CoinCap simulator", settings.coincap_simulator_port))
    services += [
        ("asset-ingestor", settings.asset_ingestor_port),
        ("exchange-ingestor", settings.exchange_ingestor_port),
        ("stream-worker", settings.stream_worker_port),
        ("control", settings.control_port),
        ("dashboard", settings.dashboard_port),
    ]
    for name, port in services:
        url = f"http://{host}:{port}/healthz"
        checks[name] = (url, functools.partial(http_answers, url))
    prometheus_url = f"http://{host}:{settings.prometheus_port}/-/ready"
    checks["Prometheus"] = (prometheus_url, functools.partial(http_answers, prometheus_url))
    return checks


def watch(settings: Settings, interval: float = 5.0) -> None:
    """Report when the stack is ready, then every change in its health, until stopped."""
    kafka_seconds = wait_for_kafka(settings)
    bigquery_seconds = wait_for_bigquery_emulator(settings)
    services = service_health_checks(settings)
    for name, (url, answers) in services.items():
        wait_until(answers, f"{name} at {url}", 60.0)
    print(
        f"ready: Kafka at {settings.kafka_bootstrap_servers} ({kafka_seconds:.1f} s), "
        f"BigQuery emulator at {settings.bigquery_emulator_url} ({bigquery_seconds:.1f} s), "
        + ", ".join(f"{name} at {url}" for name, (url, _) in services.items())
        + "; Ctrl-C stops everything",
        flush=True,
    )
    if settings.uses_coincap_simulator:
        print(
            "data is SIMULATED: no COINSTREAM_COINCAP_API_KEY is set, so the ingestors poll the "
            "bundled CoinCap simulator",
            flush=True,
        )
    checks: dict[str, Callable[[], bool]] = {
        "Kafka": lambda: asyncio.run(kafka_answers(settings)),
        "BigQuery emulator": lambda: bigquery_emulator_answers(settings),
        **{name: answers for name, (_, answers) in services.items()},
    }
    healthy = dict.fromkeys(checks, True)
    while True:
        time.sleep(interval)
        for name, check in checks.items():
            answering = check()
            if answering != healthy[name]:
                print(f"{name} {'answers again' if answering else 'stopped answering'}", flush=True)
            healthy[name] = answering


def local_processes(settings: Settings) -> dict[str, str]:
    """The processes of the local pipeline, by name, as shell commands for honcho."""
    python = shlex.quote(sys.executable)
    processes = {
        "kafka": f"{python} -m deploy.local.stack kafka",
        "bigquery": f"{python} -m deploy.local.stack bigquery",
    }
    if settings.uses_coincap_simulator:
        processes["coincap-simulator"] = (
            f"{python} -m services.coincap_simulator --port {settings.coincap_simulator_port}"
        )
    processes["asset-ingestor"] = f"{python} -m services.ingestor assets"
    processes["exchange-ingestor"] = f"{python} -m services.ingestor exchanges"
    processes["stream-worker"] = f"{python} -m services.stream_worker"
    processes["control"] = f"{python} -m services.control"
    processes["dashboard"] = f"{python} -m services.dashboard"
    processes["prometheus"] = f"{python} -m deploy.local.stack prometheus"
    processes["stack"] = f"{python} -m deploy.local.stack watch"
    return processes


def run(settings: Settings) -> int:
    """Run the local pipeline under honcho until Ctrl-C, SIGTERM, or one process exits.

    honcho starts every process, prefixes its output with its name, and on a signal (or when
    any process ends) stops all of them, killing what has not exited within a few seconds.
    """
    from honcho.manager import Manager
    from honcho.printer import Printer

    control_environment = control_access_environment(settings)
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
    for name, command in local_processes(settings).items():
        environment = dict(os.environ)
        if name == "control":
            # Only the control service gets the token; no other process needs it.
            environment.update(control_environment)
        manager.add_process(name, command, env=environment, cwd=str(PROJECT_ROOT))
    manager.loop()
    return int(manager.returncode or 0)


def control_token_path(settings: Settings) -> Path:
    return settings.state_dir / "control-token"


def control_access_environment(settings: Settings) -> dict[str, str]:
    """How ``make run``'s control service is secured, said once; its extra environment.

    With no token set and open mode not asked for, a random token is generated once into
    ``<state_dir>/control-token`` (mode 0600) and kept across runs, so scripts that read the
    file keep working; the token itself is never printed.
    """
    url = f"http://127.0.0.1:{settings.control_port}"
    if settings.control_api_token is not None:
        print(
            f"control: API at {url}; commands need the token in COINSTREAM_CONTROL_API_TOKEN",
            flush=True,
        )
        return {}
    if settings.control_allow_open:
        print(
            f"control: API at {url} is OPEN (COINSTREAM_CONTROL_ALLOW_OPEN=true): anyone on "
            "this machine can pause or stop the pipeline",
            flush=True,
        )
        return {}
    path = control_token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or not path.read_text().strip():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as token_file:
            token_file.write(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    print(
        f"control: API at {url}; commands need the token in {path}, e.g. "
        f'curl -X PUT -H "Authorization: Bearer $(cat {path})" '
        f"{url}/components/asset-ingestor/pause",
        flush=True,
    )
    return {"COINSTREAM_CONTROL_API_TOKEN": path.read_text().strip()}


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.stack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "command",
        choices=["setup", "run", "kafka", "bigquery", "prometheus", "wait", "watch"],
        help="what to do",
    )
    arguments = parser.parse_args(argv)
    # Readiness checks expect refused connections while a broker starts; aiokafka would log
    # each one as an error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"coinstream: {describe_settings_error(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        if arguments.command == "setup":
            setup(settings)
        elif arguments.command == "kafka":
            command = kafka_broker_command(settings)
            sys.stdout.flush()
            os.execv(command[0], command)  # the broker gets our signals directly
        elif arguments.command == "bigquery":
            command, environment = bigquery_emulator_command(settings)
            sys.stdout.flush()
            os.execve(command[0], command, environment)
        elif arguments.command == "prometheus":
            command = prometheus_command(settings)
            sys.stdout.flush()
            os.execv(command[0], command)
        elif arguments.command == "run":
            return run(settings)
        elif arguments.command == "wait":
            wait_for_kafka(settings)
            wait_for_bigquery_emulator(settings)
        elif arguments.command == "watch":
            watch(settings)
    except StackError as error:
        print(f"coinstream: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
