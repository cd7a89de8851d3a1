"""How many records a second one ingestor delivers to Kafka, beside what Kafka's own producer
tool and a bare aiokafka producer deliver on the same broker, with the same messages.

Starts a fresh single-node broker and the CoinCap simulator on benchmark ports, samples real
messages (simulator listings wrapped by our envelope code), then, in each of ``--runs`` runs:

1. ours: the asset ingestor's loop (``services.ingestor``, as it is) in this process, with no
   pause between polls, for ``--seconds``: records acknowledged by Kafka per second;
2. the limit: Kafka's ``ProducerPerformance`` (``kafka-tools`` jar, the broker's version)
   sending ``--producer-tool-records`` of the same messages with the same producer settings;
3. aiokafka alone (``--aiokafka-seconds``, 0 skips it): the same messages through our producer
   settings, awaiting each poll's acks before the next, and fully pipelined.

Every producer sends acks=all, idempotent, gzip, linger 5 ms, to its own fresh topic with the
pipeline's partitions. Figures go to docs/benchmarks/ingest_throughput.json and
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import time
import uuid

from prometheus_client import REGISTRY

from bench.limits import aiokafka_producer
from bench.limits.kafka_tools import kafka_tools_classpath, producer_performance
from bench.results import Figure, machine_info, publish
from bench.sample_messages import average_value_bytes, sample_polls, write_payload_file
from deploy.local.readiness import http_answers, wait_for_kafka, wait_until
from services.ingestor.loop import Ingestor
from services.ingestor.specs import IngestorSpec
from shared.coincap.client import CoinCapClient
from shared.envelope import OutgoingMessage
from shared.kafka import TopicSpec, ensure_topics
from shared.settings import PROJECT_ROOT, Settings
from tests.harness.processes import LocalStack, ManagedProcess, settings_from

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench"
SIMULATOR_PORT = 38090
ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:39092",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": "39093",
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:39050",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "39060",
    "COINSTREAM_STATE_DIR": str(BENCH_STATE_DIR / "stack"),
    "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
    "COINSTREAM_POLL_INTERVAL_SECONDS": "0.001",
}
SAMPLED_POLLS = 10
WARM_UP_SECONDS = 2.0
FIRST_ACK_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 30.0
CANCEL_ATTEMPTS = 30
PRODUCER_TOOL_PROPERTIES = {
    # What shared.kafka.create_producer sets for every ingestor.
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "gzip",
    "linger.ms": "5",
}


def progress(message: str) -> None:
    print(f"ingest: {message}", flush=True)


def bench_topic(settings: Settings, purpose: str) -> TopicSpec:
    """A fresh topic configured as the pipeline's record topics are."""
    return TopicSpec(
        f"bench.{purpose}.{uuid.uuid4().hex[:12]}",
        settings.topic_partitions,
        settings.topic_replication_factor,
        settings.topic_retention_hours,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )


async def ingestor_rate(settings: Settings, seconds: float) -> tuple[float, int]:
    """Records per second the asset ingestor's loop delivers, and the records it dropped."""
    topic = bench_topic(settings, "ingestor").name
    spec = IngestorSpec("bench-ingestor", "assets", "id", topic)
    ingestor = Ingestor(
        spec,
        settings.model_copy(update={"topic_assets": topic}),
        CoinCapClient.from_settings(settings),
    )
    labels = {"ingestor": spec.name, "topic": topic}

    def acknowledged() -> float:
        return REGISTRY.get_sample_value("coinstream_records_produced_total", labels) or 0

    run = asyncio.create_task(ingestor.run())
    # Warm-up: topics created, producer connected, records flowing; then a little more.
    try:
        async with asyncio.timeout(FIRST_ACK_TIMEOUT_SECONDS):
            # A Prometheus counter has no event to wait on.
            while not acknowledged():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise RuntimeError(
            f"the ingestor had no record acknowledged within {FIRST_ACK_TIMEOUT_SECONDS:.0f} s "
            f"(Kafka connected: {ingestor.delivery.kafka_connected}, last poll error: "
            f"{ingestor.last_error}); see {BENCH_STATE_DIR / 'logs'}"
        ) from None
    await asyncio.sleep(WARM_UP_SECONDS)
    start_count = acknowledged()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    end_count = acknowledged()
    elapsed = time.monotonic() - started
    await ingestor.stop()
    await stop_within(run, settings.shutdown_flush_seconds + STOP_GRACE_SECONDS)
    await ingestor.client.aclose()
    return (end_count - start_count) / elapsed, ingestor.delivery.dropped_records


async def stop_within(run: asyncio.Task[None], seconds: float) -> None:
    """Wait for the ingestor's ``run`` to end after ``stop``; one that does not end in
    ``seconds`` is a bug worth seeing, so say so, then cancel it until it ends."""
    done, _ = await asyncio.wait({run}, timeout=seconds)
    if done:
        run.result()
        return
    progress(
        f"  WARNING: the ingestor had not stopped {seconds:.0f} s after it was asked to (a "
        "shutdown bug in services/ingestor); cancelling it"
    )
    for _ in range(CANCEL_ATTEMPTS):
        run.cancel()
        await asyncio.wait({run}, timeout=1.0)
        if run.done():
            return
    raise RuntimeError(f"the ingestor ignored {CANCEL_ATTEMPTS} cancellations; giving up")


async def fresh_topic(settings: Settings, purpose: str) -> str:
    topic = bench_topic(settings, purpose)
    await ensure_topics(settings, [topic])
    return topic.name


def measure_runs(
    settings: Settings,
    arguments: argparse.Namespace,
    polls: list[list[OutgoingMessage]],
    figures: dict[str, Figure],
) -> list[int]:
    """Each run's figures, appended to ``figures``; returns each run's dropped records."""
    payload_file = write_payload_file(
        [message for poll in polls for message in poll], BENCH_STATE_DIR / "payload.txt"
    )
    dropped_per_run = []
    for run in range(1, arguments.runs + 1):
        progress(f"run {run}/{arguments.runs}: our asset ingestor for {arguments.seconds:.0f} s")
        ours, dropped = asyncio.run(ingestor_rate(settings, arguments.seconds))
        dropped_per_run.append(dropped)
        progress(f"  {ours:,.0f} records/s acknowledged ({dropped:,} dropped)")
        progress(
            f"run {run}/{arguments.runs}: Kafka's ProducerPerformance, "
            f"{arguments.producer_tool_records:,} records"
        )
        topic = asyncio.run(fresh_topic(settings, "producer-tool"))
        tool = producer_performance(
            settings, topic, payload_file, arguments.producer_tool_records, PRODUCER_TOOL_PROPERTIES
        )
        progress(f"  {tool.records_per_second:,.0f} records/s")
        figures["ours"].values.append(ours)
        figures["producer_tool"].values.append(tool.records_per_second)
        figures["share"].values.append(100 * ours / tool.records_per_second)
        if arguments.aiokafka_seconds > 0:
            for key, send in (
                ("aiokafka_per_poll", aiokafka_producer.per_poll),
                ("aiokafka_pipelined", aiokafka_producer.pipelined),
            ):
                progress(
                    f"run {run}/{arguments.runs}: {figures[key].label} "
                    f"for {arguments.aiokafka_seconds:.0f} s"
                )
                topic = asyncio.run(fresh_topic(settings, key.replace("_", "-")))
                rate = asyncio.run(send(settings, topic, polls, arguments.aiokafka_seconds))
                figures[key].values.append(rate)
                progress(f"  {rate:,.0f} records/s")
    return dropped_per_run


def ingest_figures(poll_size: int, with_aiokafka: bool) -> dict[str, Figure]:
    figures = {
        "ours": Figure(
            "ingestor_records_per_second",
            "one asset ingestor",
            "records/s",
            "the asset ingestor's loop from `services/ingestor` in the benchmark process, polling "
            f"the simulator over loopback HTTP ({poll_size} assets a poll) with no pause; "
            "records acknowledged by Kafka (`coinstream_records_produced_total`) over the "
            f"measured seconds, starting {WARM_UP_SECONDS:.0f} s after the first acknowledgement.",
            limit_key="producer_tool_records_per_second",
        ),
        "producer_tool": Figure(
            "producer_tool_records_per_second",
            "Kafka's ProducerPerformance",
            "records/s",
            "`org.apache.kafka.tools.ProducerPerformance` at the broker's Kafka version, "
            "`--throughput -1`, `--payload-file` of the sampled messages (random line per "
            "record, no key), the same producer settings; the tool's own summary line.",
        ),
        "share": Figure(
            "ingestor_share_of_producer_tool",
            "ingestor / ProducerPerformance (same run)",
            "%",
            "each run's ingestor rate divided by the same run's ProducerPerformance rate.",
            target=">= 50 %",
        ),
    }
    if with_aiokafka:
        figures["aiokafka_per_poll"] = Figure(
            "aiokafka_per_poll_records_per_second",
            "aiokafka alone, acks awaited per poll",
            "records/s",
            f"our producer settings (`shared.kafka.create_producer`), the sampled polls sent one "
            f"at a time ({poll_size} records), each poll's acknowledgements awaited before the "
            "next: one round trip per poll.",
            limit_key="producer_tool_records_per_second",
        )
        figures["aiokafka_pipelined"] = Figure(
            "aiokafka_pipelined_records_per_second",
            "aiokafka alone, pipelined",
            "records/s",
            "the same producer and messages sent without waiting; timed until the last one "
            "sent is acknowledged.",
            limit_key="producer_tool_records_per_second",
        )
    return figures


def main() -> int:
    # Refused connections while the broker starts, and buffer-overflow drops, are expected here;
    # the drops are reported as a count.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("services.ingestor").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="how long to measure the ingestor, each run"
    )
    parser.add_argument(
        "--producer-tool-records",
        type=int,
        default=500_000,
        help="records ProducerPerformance sends, each run",
    )
    parser.add_argument(
        "--aiokafka-seconds",
        type=float,
        default=8.0,
        help="how long to measure each bare aiokafka mode, each run (0 skips them)",
    )
    arguments = parser.parse_args()
    started = time.monotonic()
    machine = machine_info()

    progress("Kafka's performance tools: checking the kafka-tools jars")
    settings = settings_from(ENVIRONMENT)
    kafka_tools_classpath(settings)
    shutil.rmtree(BENCH_STATE_DIR, ignore_errors=True)
    local_stack = LocalStack(ENVIRONMENT, BENCH_STATE_DIR)
    simulator = ManagedProcess(
        "coincap-simulator",
        [sys.executable, "-m", "services.coincap_simulator", "--port", str(SIMULATOR_PORT)],
        {},
        BENCH_STATE_DIR / "logs",
    )
    progress(f"starting a fresh broker at {settings.kafka_bootstrap_servers} and the simulator")
    local_stack.kafka.start()
    simulator.start()
    try:
        wait_for_kafka(settings, 90, local_stack.kafka.is_running)
        wait_until(
            lambda: http_answers(f"http://127.0.0.1:{SIMULATOR_PORT}/healthz"), "the simulator", 30
        )
        progress(f"sampling {SAMPLED_POLLS} asset polls from the simulator as real messages")
        polls = asyncio.run(sample_polls(settings, "sample", SAMPLED_POLLS))
        messages = [message for poll in polls for message in poll]
        average_bytes = average_value_bytes(messages)
        progress(f"  {len(messages):,} messages, {average_bytes:.0f} B on average")
        figures = ingest_figures(len(polls[0]), arguments.aiokafka_seconds > 0)
        dropped = measure_runs(settings, arguments, polls, figures)
    finally:
        simulator.stop()
        local_stack.kafka.stop()

    notes = [
        f"Messages: {len(messages):,} real asset messages sampled from {SAMPLED_POLLS} simulator "
        f"polls through `shared.envelope.record_message`, {average_bytes:.0f} B on average "
        "before compression. Every producer: acks=all, idempotent, gzip, linger 5 ms, one "
        f"single-node broker, a fresh topic of {settings.topic_partitions} partitions per "
        "measurement. The ingestor and aiokafka key each record by its id; ProducerPerformance "
        "sends no key.",
        f"Records the ingestor dropped from its full buffer (polling outran delivery), per run: "
        f"{', '.join(f'{count:,}' for count in dropped)}.",
    ]
    json_path = publish(
        "ingest_throughput",
        "Ingest: one ingestor beside Kafka's producer tool",
        list(figures.values()),
        notes,
        {
            "ingestor_seconds": arguments.seconds,
            "producer_tool_records": arguments.producer_tool_records,
            "aiokafka_seconds": arguments.aiokafka_seconds,
            "producer_properties": PRODUCER_TOOL_PROPERTIES,
            "topic_partitions": settings.topic_partitions,
            "average_message_bytes": round(average_bytes, 1),
            "messages_per_poll": len(polls[0]),
            # The ingestor's own delivery settings (buffer, polls in flight), as it ran.
            "ingestor_settings": {
                name: value
                for name, value in settings.model_dump(mode="json").items()
                if name.startswith("ingest_")
            },
        },
        machine,
    )
    for figure in figures.values():
        print(
            f"{figure.label}: median {figure.median:,.0f} {figure.unit} "
            f"(min {figure.low:,.0f}, max {figure.high:,.0f}, {len(figure.values)} runs)"
        )
    progress(f"done in {time.monotonic() - started:.0f} s; figures in {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
