"""The Prometheus config and alerting rules are valid, tested, and local equals compose."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.local.prometheus import PROMETHEUS_DIR, write_prometheus_config
from shared.settings import PROJECT_ROOT, Settings


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not on PATH; `make setup` installs Debian's prometheus package")
    return subprocess.run(
        [binary, *arguments], capture_output=True, text=True, check=False, timeout=60
    )


def test_alerting_rules_are_valid() -> None:
    result = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    # Every alert is in the operator's table of alerts.
    alert_table = (PROJECT_ROOT / "docs" / "deploy.md").read_text()
    assert [rule["alert"] for rule in rules if f"| `{rule['alert']}` |" not in alert_table] == []


def test_alerting_rules_fire_as_their_unit_tests_say() -> None:
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_issue_asks_for_is_there() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "CoinstreamConsumerLagHigh",
        "CoinstreamDataStale",
        "CoinstreamCoinCapQuotaExhausted",
        "CoinstreamComponentDown",
    } <= names


def test_compose_config_is_valid_and_scrapes_every_service() -> None:
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets["coinstream-control"] == ["control:8100"]
    assert targets["coinstream-asset-ingestor"] == ["asset-ingestor:8101"]
    assert targets["coinstream-exchange-ingestor"] == ["exchange-ingestor:8102"]
    assert targets["coinstream-stream-worker"] == ["stream-worker:8103"]
    assert targets["coinstream-dashboard"] == ["dashboard:8200"]


def test_local_config_has_the_same_jobs_on_the_local_ports(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path,
        control_port=18100,
        dashboard_port=18200,
        prometheus_port=19090,
    )
    path = write_prometheus_config(settings)
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr

    compose = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    local = yaml.safe_load(path.read_text())
    assert [job["job_name"] for job in local["scrape_configs"]] == [
        job["job_name"] for job in compose["scrape_configs"]
    ]
    assert local["global"] == compose["global"]
    local_targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in local["scrape_configs"]
    }
    assert local_targets["coinstream-control"] == ["127.0.0.1:18100"]
    assert local_targets["coinstream-dashboard"] == [f"127.0.0.1:{settings.dashboard_port}"]
    assert local_targets["coinstream-dashboard"] == ["127.0.0.1:18200"]
    assert local_targets["prometheus"] == ["127.0.0.1:19090"]
    assert local["rule_files"] == [str(PROMETHEUS_DIR / "alerts.yml")]
