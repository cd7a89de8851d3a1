"""Prometheus for ``make run``: the compose config, rewritten for the local ports.

The jobs are those of ``deploy/prometheus/prometheus.yml``, so the local and compose stacks
scrape the same services; only each target becomes ``127.0.0.1`` at that service's local port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deploy.local.errors import StackError
from deploy.local.prerequisites import require_command, require_free_port
from shared.settings import PROJECT_ROOT, Settings

PROMETHEUS_DIR = PROJECT_ROOT / "deploy" / "prometheus"


def prometheus_data_dir(settings: Settings) -> Path:
    return settings.state_dir / "prometheus"


def local_scrape_ports(settings: Settings) -> dict[str, int]:
    """The local port of each job in deploy/prometheus/prometheus.yml."""
    return {
        "coinstream-control": settings.control_port,
        "coinstream-asset-ingestor": settings.asset_ingestor_port,
        "coinstream-exchange-ingestor": settings.exchange_ingestor_port,
        "coinstream-stream-worker": settings.stream_worker_port,
        "coinstream-dashboard": settings.dashboard_port,
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
                "it to local_scrape_ports in deploy/local/prometheus.py"
            )
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
    config["rule_files"] = [str(PROMETHEUS_DIR / rules) for rules in config.get("rule_files", [])]
    return config


def write_prometheus_config(settings: Settings) -> Path:
    path = prometheus_data_dir(settings) / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by deploy/local/prometheus.py from deploy/prometheus/prometheus.yml and "
        "coinstream settings; edits are lost.\n"
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
