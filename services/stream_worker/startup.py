"""What the stream worker makes sure of once, before it first starts its query: Kafka's topics
and the warehouse's tables and views, waiting until both answer; and a warning about a
checkpoint that a worker restarted on another machine would not find."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from google.cloud import bigquery
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from shared.kafka import START_GRACE_SECONDS, ensure_topics, pipeline_topics
from shared.settings import WorkerSettings
from shared.warehouse import (
    WarehouseIncompatible,
    check_warehouse,
    create_bigquery_client,
    ensure_views,
    ensure_warehouse,
    evolve_warehouse,
)

logger = logging.getLogger(__name__)

DEPENDENCY_PATIENCE_SECONDS = 300.0


def checkpoint_bound_to_this_machine(settings: WorkerSettings) -> bool:
    """True for a checkpoint on a local path while Spark runs on a cluster of other machines.

    Only the driver reads and writes the checkpoint (the query keeps no state on executors),
    but on a cluster the worker may be started again on another machine, which would find no
    checkpoint there and start from the earliest offsets.
    """
    master = settings.spark_master_url
    on_this_machine = not settings.spark_runs_on_cluster or any(
        host in master for host in ("//127.0.0.1:", "//localhost:")
    )
    return not on_this_machine and "://" not in settings.checkpoint_location


def warn_if_checkpoint_bound_to_this_machine(settings: WorkerSettings) -> None:
    """Say how to keep the checkpoint where a restarted worker finds it (see above)."""
    if checkpoint_bound_to_this_machine(settings):
        logger.warning(
            "the checkpoint %s is a path on this machine, and Spark runs on %s; keep it on "
            "storage a restarted worker reaches wherever it runs (gs://, hdfs://, a shared "
            "mount) with COINSTREAM_STREAM_CHECKPOINT_LOCATION",
            settings.checkpoint_location,
            settings.spark_master_url,
        )


def prepare_dependencies(
    settings: WorkerSettings, on_wait: Callable[[str], None] = lambda reason: None
) -> bigquery.Client:
    """Topics, tables and views, waiting for Kafka and the warehouse to answer; return the
    warehouse client.

    Under ``make run`` (or compose) every process starts at once, and the broker can take
    longer to come up than the worker; so the worker waits, saying what it waits for (in its
    log, and through ``on_wait``, which the worker's status shows). Where the worker owns the
    warehouse (the emulator) it creates the tables and views and adds the code's new nullable
    columns; where Terraform does (GCP) it only checks them. A mismatch either cannot mend
    (``WarehouseIncompatible``) is raised at once, since no wait will fix it.
    """

    next_warning = START_GRACE_SECONDS

    def log_wait(state: RetryCallState) -> None:
        nonlocal next_warning
        error = state.outcome.exception() if state.outcome else None
        reason = f"waiting for Kafka and the warehouse: {error}"
        on_wait(reason)
        # A normal start: they start beside the worker, and answer within seconds. One line
        # says so; a wait past the grace period is worth a warning, once each grace period
        # (the tries themselves come every 2 s).
        waited = state.seconds_since_start or 0.0
        if waited >= next_warning:
            level = logging.WARNING
            next_warning = waited + START_GRACE_SECONDS
        else:
            level = logging.INFO if state.attempt_number == 1 else logging.DEBUG
        logger.log(level, "%s; trying again in %.1f s", reason, state.upcoming_sleep)

    for attempt in Retrying(
        stop=stop_after_delay(DEPENDENCY_PATIENCE_SECONDS),
        # Tries are cheap (a refused connection), and the first rows wait on the one that
        # succeeds: every 2 s at most.
        wait=wait_exponential(multiplier=0.25, max=2),
        retry=retry_if_not_exception_type(WarehouseIncompatible),
        before_sleep=log_wait,
        reraise=True,
    ):
        with attempt:
            asyncio.run(ensure_topics(settings, pipeline_topics(settings)))
            client = create_bigquery_client(settings)
            if settings.worker_owns_warehouse_schema:
                ensure_warehouse(client, settings)
                for column in evolve_warehouse(client, settings):
                    logger.info("added the new column %s to the warehouse", column)
                ensure_views(client, settings)
            else:
                check_warehouse(client, settings)
    return client
