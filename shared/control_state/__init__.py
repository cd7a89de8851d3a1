"""The desired state of each pipeline component, kept in a compacted Kafka topic.

The control service writes one record per change (key: the component's name; value: JSON
with the desired state, a restart counter, who asked and when). Compaction keeps the newest
record per key for good, so the desired state outlives a restart of the component and of the
control service, and every replica of a component reads the same answer. Components only read:

- asyncio code (the ingestors) runs a ``DesiredStateWatcher``, which reads the topic from the
  beginning and then follows it, calling back on each change;
- threaded code (the Spark stream worker) runs a ``DesiredStateThread``, the same watcher on an
  event loop of its own thread.

A component with no record is RUNNING: no command was ever given for it.
"""

from shared.control_state.models import (
    COMPONENTS,
    Desired,
    DesiredState,
    control_topic,
    restart_requested,
)
from shared.control_state.watcher import DesiredStateThread, DesiredStateWatcher

__all__ = [
    "COMPONENTS",
    "Desired",
    "DesiredState",
    "DesiredStateThread",
    "DesiredStateWatcher",
    "control_topic",
    "restart_requested",
]
