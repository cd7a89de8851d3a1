"""``/metrics`` as every service serves it: no ``*_created`` series, whichever module a process
imports first (the switch is read at each scrape, not when a metric is made)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def test_counters_made_before_shared_metrics_is_imported_have_no_created_series() -> None:
    # A fresh interpreter, so that the services' metrics exist before shared.metrics is imported.
    script = textwrap.dedent(
        """
        import sys
        from services.ingestor import metrics as ingestor_metrics
        from services.stream_worker import metrics as worker_metrics
        assert "shared.metrics" not in sys.modules
        ingestor_metrics.RECORDS_PRODUCED.labels("assets", "coincap.assets.v1").inc()
        worker_metrics.ROWS_WRITTEN.labels("assets").inc(3)
        from shared.metrics import metrics_endpoint
        print(bytes(metrics_endpoint().body).decode())
        """
    )
    exposition = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout
    assert 'coinstream_records_produced_total{ingestor="assets"' in exposition
    assert 'coinstream_stream_rows_written_total{table="assets"} 3.0' in exposition
    assert "_created" not in exposition
