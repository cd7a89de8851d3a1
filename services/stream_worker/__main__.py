"""``python -m services.stream_worker``: the streaming query, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
from types import FrameType

from services.stream_worker.app import serve_in_background
from services.stream_worker.worker import StreamWorker
from shared.logging import configure_logging
from shared.settings import load_settings_or_exit


def main() -> None:
    settings = load_settings_or_exit()
    configure_logging("stream-worker", settings.log_level)
    worker = StreamWorker(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = serve_in_background(worker, settings.bind_host, settings.stream_worker_port)
    try:
        worker.run()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
