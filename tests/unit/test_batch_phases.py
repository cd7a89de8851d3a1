"""Per-batch phase timing: what a batch records, and that code outside a batch records nothing."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.stream_worker.batch_phases import phase, recording


def observed(name: str) -> float:
    value = REGISTRY.get_sample_value(
        "coinstream_stream_batch_phase_seconds_count", {"phase": name}
    )
    return value or 0.0


def test_phases_add_up_per_name_in_the_order_they_first_ran() -> None:
    with recording() as phases:
        with phase("assets.merge"):
            pass
        with phase("offset_commit"):
            pass
        with phase("assets.merge"):
            pass
    assert list(phases.seconds) == ["assets.merge", "offset_commit"]
    assert all(seconds >= 0 for seconds in phases.seconds.values())
    before = observed("assets.merge")
    phases.observe()
    assert observed("assets.merge") == before + 1


def test_a_phase_outside_a_batch_records_nothing() -> None:
    with recording() as phases:
        pass
    with phase("not.in.a.batch"):
        pass
    assert phases.seconds == {}


def test_a_phase_that_raises_is_still_timed() -> None:
    with recording() as phases:
        try:
            with phase("exchanges.merge"):
                raise TimeoutError("the warehouse did not answer")
        except TimeoutError:
            pass
    assert "exchanges.merge" in phases.seconds
