"""The Docker stack under test: its Compose project, host ports, and how to drive it.

Shared by ``conftest.py`` (which brings the stack up once per run) and the tests.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import PROJECT_ROOT
from tests.harness.environment import offset_port

ENGINE_SCRIPT = PROJECT_ROOT / "deploy" / "docker" / "engine.sh"
BASE_IMAGES_SCRIPT = PROJECT_ROOT / "deploy" / "docker" / "base-images" / "build.sh"
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
PROJECT_NAME = "coinstream-dockertest"
HOST_PORTS = {
    "KAFKA_HOST_PORT": offset_port(49092),
    "BIGQUERY_HOST_PORT": offset_port(49050),
    "BIGQUERY_GRPC_HOST_PORT": offset_port(49060),
    "CONTROL_HOST_PORT": offset_port(48100),
    "DASHBOARD_HOST_PORT": offset_port(48200),
    "PROMETHEUS_HOST_PORT": offset_port(49090),
}
LIVE_SETTINGS = ("COINSTREAM_GCP_PROJECT", "COINSTREAM_COINCAP_API_KEY")

FIGURES: dict[str, str] = {}
"""Build time, image sizes, time to healthy: printed at the end of the run."""


@dataclass
class DockerStack:
    """The compose project under test, and the environment `make` and `docker` run with."""

    environment: dict[str, str]
    token: str
    log_dir: Path
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, argv: list[str], name: str, timeout: float = 900) -> str:
        """Run ``argv`` in the checkout; its output goes to ``<name>.log``; fail with its tail."""
        started = time.monotonic()
        result = subprocess.run(
            argv,
            cwd=PROJECT_ROOT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.timings[name] = time.monotonic() - started
        output = result.stdout + result.stderr
        (self.log_dir / f"{name}.log").write_text(output)
        assert result.returncode == 0, f"{' '.join(argv)} failed:\n{output[-4000:]}"
        return output

    def compose(self, *arguments: str, name: str = "compose", timeout: float = 900) -> str:
        return self.run(["docker", "compose", *arguments], name, timeout)

    def host_url(self, variable: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.environment[variable]}{path}"

    def service_logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, name=f"logs-{service}")


def extra_ca_bundle(directory: Path) -> Path | None:
    """The CAs this machine adds to Debian's (``/usr/local/share/ca-certificates``), as one
    bundle: the build's ``ca_bundle`` secret, for registries behind an intercepting proxy."""
    certificates = sorted(LOCAL_CA_DIR.glob("*.crt")) if LOCAL_CA_DIR.is_dir() else []
    if not certificates:
        return None
    bundle = directory / "extra-ca.pem"
    bundle.write_text("".join(path.read_text() for path in certificates))
    return bundle


def substitute_base_images() -> dict[str, str]:
    """Build (or find) the substitute base images; their variables, as build.sh prints them."""
    result = subprocess.run(
        [str(BASE_IMAGES_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert result.returncode == 0, f"{BASE_IMAGES_SCRIPT} failed:\n{result.stderr[-4000:]}"
    return dict(line.split("=", 1) for line in result.stdout.split())


def image_size(image: str) -> str:
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return f"{int(size) / 1e6:.0f} MB"
