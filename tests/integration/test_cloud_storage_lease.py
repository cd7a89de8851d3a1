"""The lease on a gs:// checkpoint, with the real Cloud Storage client on fake-gcs-server (a
Cloud Storage emulator that checks generation preconditions on uploads): taken, refused naming
its holder and how to take over, renewed, released, expired and taken over by one successor
only, broken by hand, and lost when storage stops answering."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.stream_worker.checkpoint_lease import (
    CheckpointHeld,
    CloudStorageLease,
    LeaseHolder,
    LeaseKeeper,
    LeaseLost,
    cloud_storage_client,
)
from tests.harness.cloud_storage import cloud_storage_emulator, new_bucket
from tests.harness.environment import offset_port
from tests.harness.processes import settings_from
from tests.harness.waiting import wait_for

CLOUD_STORAGE_PORT = offset_port(18444)
SPARE_CLOUD_STORAGE_PORT = offset_port(18445)
"""For the test that stops its emulator."""
TTL = 3.0
SINCE = datetime(2026, 12, 7, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def cloud_storage() -> Iterator[str]:
    with cloud_storage_emulator(CLOUD_STORAGE_PORT) as url:
        yield url


@pytest.fixture
def location(cloud_storage: str) -> str:
    return f"gs://{new_bucket(cloud_storage)}/stream-worker"


def lease(
    url: str, location: str, host: str, holder: LeaseHolder | None = None, ttl: float = TTL
) -> CloudStorageLease:
    client = cloud_storage_client(settings_from({"COINSTREAM_GCS_EMULATOR_URL": url}))
    holder = holder or LeaseHolder(host, 100, SINCE, ttl_seconds=ttl)
    return CloudStorageLease(client, location, ttl, holder)


def stored_holder(url: str, location: str) -> LeaseHolder | None:
    client = cloud_storage_client(settings_from({"COINSTREAM_GCS_EMULATOR_URL": url}))
    bucket, _, prefix = location.removeprefix("gs://").partition("/")
    blob = client.bucket(bucket).get_blob(f"{prefix}/lease")
    return None if blob is None else LeaseHolder.from_json(blob.download_as_bytes().decode())


def lease_age(url: str, location: str) -> float:
    """Seconds since the stored lease was last written: its expiry counts from then."""
    client = cloud_storage_client(settings_from({"COINSTREAM_GCS_EMULATOR_URL": url}))
    bucket, _, prefix = location.removeprefix("gs://").partition("/")
    blob = client.bucket(bucket).get_blob(f"{prefix}/lease")
    assert blob is not None and blob.updated is not None, "no lease stored"
    written: datetime = blob.updated
    return (datetime.now(UTC) - written).total_seconds()


def test_a_held_lease_is_refused_in_one_line_naming_the_holder_and_how_to_take_over(
    cloud_storage: str, location: str
) -> None:
    first = lease(cloud_storage, location, "worker-a")
    first.acquire()
    with pytest.raises(CheckpointHeld) as refused:
        lease(cloud_storage, location, "worker-b").acquire()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"the checkpoint {location} is in use by the stream worker on host worker-a (pid 100) "
        "since 2026-12-07T03:04:05Z; stop that worker first"
    )
    assert re.search(
        r"if it died without releasing its lease, the lease expires at "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(3 s after its last renewal\), or break it "
        rf"now with `gcloud storage rm {location}/lease` once you are sure that worker is gone$",
        message,
    ), message
    first.renew()  # the refusal took nothing from the holder
    assert stored_holder(cloud_storage, location) == first.holder


def test_a_released_lease_is_taken_at_once_and_a_renewed_one_is_not(
    cloud_storage: str, location: str
) -> None:
    first = lease(cloud_storage, location, "worker-a")
    first.acquire()
    for _ in range(3):  # held for longer than its period, renewed within it each time
        wait_for(
            lambda: lease_age(cloud_storage, location) >= TTL / 2,
            "half the lease's period to pass",
            30,
        )
        first.renew()
    with pytest.raises(CheckpointHeld):
        lease(cloud_storage, location, "worker-b").acquire()
    first.release()
    assert stored_holder(cloud_storage, location) is None
    second = lease(cloud_storage, location, "worker-b")
    second.acquire()
    assert stored_holder(cloud_storage, location) == second.holder


def test_an_expired_lease_goes_to_one_successor_and_its_old_holder_has_lost_it(
    cloud_storage: str, location: str
) -> None:
    """A holder that died without releasing: after its period (the holder's, written in the
    lease, whatever the successors' own), of two successors that both see the lease expired,
    one takes it; the other is refused. The old holder, were it alive after all, finds at its
    next renewal that the lease is another's."""
    dead = lease(cloud_storage, location, "worker-a")
    dead.acquire()
    wait_for(
        lambda: lease_age(cloud_storage, location) > TTL, "the dead holder's lease to expire", 30
    )
    # A minute's lease for the successors: the loser's look must not outlast the winner's.
    successors = [lease(cloud_storage, location, f"worker-{name}", ttl=60) for name in "bc"]
    outcomes: dict[str, str] = {}

    def take(successor: CloudStorageLease) -> None:
        try:
            successor.acquire()
            outcomes[successor.holder.host] = "took it"
        except CheckpointHeld:
            outcomes[successor.holder.host] = "refused"

    threads = [threading.Thread(target=take, args=(successor,)) for successor in successors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["refused", "took it"]
    winner = next(s for s in successors if outcomes[s.holder.host] == "took it")
    assert stored_holder(cloud_storage, location) == winner.holder
    with pytest.raises(
        LeaseLost, match=f"is now held by the stream worker on host {winner.holder.host}"
    ):
        dead.renew()
    dead.release()  # no longer its own: releasing leaves the winner's lease alone
    assert stored_holder(cloud_storage, location) == winner.holder


def test_a_lease_broken_by_hand_is_lost_by_its_holder_at_its_next_renewal(
    cloud_storage: str, location: str
) -> None:
    holder = lease(cloud_storage, location, "worker-a")
    holder.acquire()
    lost = threading.Event()
    keeper = LeaseKeeper(holder, lambda error: lost.set())
    keeper.start()
    try:
        # `gcloud storage rm gs://.../lease`, as the refusal says
        client = cloud_storage_client(settings_from({"COINSTREAM_GCS_EMULATOR_URL": cloud_storage}))
        bucket, _, prefix = location.removeprefix("gs://").partition("/")
        client.bucket(bucket).blob(f"{prefix}/lease").delete()
        assert lost.wait(TTL), "the holder did not notice its lease was removed"
    finally:
        keeper.stop()
    assert keeper.lost is not None and "was removed while this worker held it" in str(keeper.lost)
    lease(cloud_storage, location, "worker-b").acquire()


def test_a_create_whose_answer_was_lost_is_found_to_be_ours(
    cloud_storage: str, location: str
) -> None:
    """The same holder's token in the lease: its own earlier write, not another worker's."""
    first = lease(cloud_storage, location, "worker-a")
    first.acquire()
    retried = lease(cloud_storage, location, "worker-a", holder=first.holder)
    retried.acquire()
    retried.renew()


def test_a_holder_that_cannot_reach_storage_loses_its_lease_before_it_expires() -> None:
    ttl = 6.0  # loses it after 3.6 s, its last try taking up to 1 s: well before 6 s
    with cloud_storage_emulator(SPARE_CLOUD_STORAGE_PORT) as url:
        holder = lease(url, f"gs://{new_bucket(url)}/stream-worker", "worker-a", ttl=ttl)
        holder.acquire()
        acquired = time.monotonic()
        lost_at: list[float] = []
        keeper = LeaseKeeper(holder, lambda error: lost_at.append(time.monotonic()))
        keeper.start()
    try:
        deadline = time.monotonic() + 2 * ttl
        while not lost_at and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        keeper.stop()
    assert lost_at, "an unreachable storage never cost the lease"
    assert lost_at[0] - acquired < ttl, "the holder kept its lease past its expiry"
    assert keeper.lost is not None and "could not renew the lease" in str(keeper.lost)
