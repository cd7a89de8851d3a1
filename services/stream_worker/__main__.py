"""``python -m services.stream_worker``: the streaming query, until SIGTERM or Ctrl-C.

A warehouse that differs from the code in a way the worker does not mend itself
(``WarehouseIncompatible``) ends the process with exit status 2 and one line saying what differs
and what to do (``terraform apply``, or a migration by hand): restarting would not help, so a
supervisor should not keep trying. Every other failure, a query that will not start included,
is retried inside the process.

A checkpoint another worker holds (``CheckpointHeld``), or a lease lost while running
(``LeaseLost``), ends it with exit status 3 and one line naming the holder and how to take over:
it is worth starting again later, once the holder has stopped or its lease expired
(``checkpoint_lease``).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from services.stream_worker.app import serve_in_background
from services.stream_worker.checkpoint_lease import CheckpointHeld, LeaseLost
from services.stream_worker.worker import StreamWorker
from shared.logging import configure_logging
from shared.settings import WorkerSettings, load_settings_or_exit
from shared.warehouse import WarehouseIncompatible

EXIT_CHECKPOINT_HELD = 3
"""Another worker holds the checkpoint: worth trying again later, unlike exit status 2."""


def main() -> None:
    settings = load_settings_or_exit(WorkerSettings)
    configure_logging("stream-worker", settings.log_level, settings.log_format)
    worker = StreamWorker(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = serve_in_background(worker, settings.bind_host, settings.stream_worker_port)
    try:
        worker.run()
    except WarehouseIncompatible as error:
        print(f"coinstream: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except CheckpointHeld as error:
        print(f"coinstream: {error}", file=sys.stderr)
        raise SystemExit(EXIT_CHECKPOINT_HELD) from None
    except LeaseLost as error:
        print(
            f"coinstream: the stream worker lost its lease on {settings.checkpoint_location} "
            f"and stopped its query: {error}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_CHECKPOINT_HELD) from None
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
