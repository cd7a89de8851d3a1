"""The Docker stack of the `docker` tests: `make up` on a real engine, from substitute base images.

The engine (``deploy/docker/engine.sh``) and the substitute base images
(``deploy/docker/base-images/build.sh``) are made ready once; the images stay in the engine, so
a second run builds nothing but what changed. The stack runs as its own Compose project on its
own host ports, so a developer's `make up` or `make run` on the default ports can stay up.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from shared.settings import PROJECT_ROOT
from tests.docker.stack import (
    ENGINE_SCRIPT,
    FIGURES,
    HOST_PORTS,
    LIVE_SETTINGS,
    PROJECT_NAME,
    DockerStack,
    extra_ca_bundle,
    image_size,
    substitute_base_images,
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("docker stack figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def docker_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerStack]:
    """`make up` of the whole local-mode pipeline; at the end, everything it made is removed."""
    dotenv = PROJECT_ROOT / ".env"
    if dotenv.exists() and any(
        line.split("=", 1)[0].strip() in LIVE_SETTINGS and line.split("=", 1)[1].strip()
        for line in dotenv.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ):
        pytest.skip(
            ".env sets a live setting (GCP project or CoinCap key); this test runs local mode"
        )
    subprocess.run([str(ENGINE_SCRIPT)], check=True, timeout=600)
    started = time.monotonic()
    base_images = substitute_base_images()
    FIGURES["substitute base images ready in"] = f"{time.monotonic() - started:.0f} s"
    log_dir = tmp_path_factory.mktemp("docker-stack")
    token = secrets.token_urlsafe(24)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("COINSTREAM_")
    }
    environment.update(base_images)
    environment.update({variable: str(port) for variable, port in HOST_PORTS.items()})
    environment.update(
        {
            "COMPOSE_PROJECT_NAME": PROJECT_NAME,
            "COMPOSE_BAKE": "false",
            "COINSTREAM_CONTROL_API_TOKEN": token,
            "APP_IMAGE": f"{PROJECT_NAME}:local",
        }
    )
    bundle = extra_ca_bundle(log_dir)
    if bundle is not None:
        environment["BUILD_CA_BUNDLE"] = str(bundle)
    stack = DockerStack(environment, token, log_dir)
    stack.compose("--profile", "*", "down", "--volumes", "--remove-orphans", name="clean-before")
    stack.compose("build", name="build", timeout=1800)
    FIGURES["image build (coinstream image, cached bases)"] = f"{stack.timings['build']:.0f} s"
    for variable in ("PYTHON_IMAGE", "NODE_IMAGE", "KAFKA_IMAGE", "PROMETHEUS_IMAGE"):
        FIGURES[f"size of {base_images[variable]}"] = image_size(base_images[variable])
    FIGURES[f"size of {environment['APP_IMAGE']}"] = image_size(environment["APP_IMAGE"])
    stack.run(["make", "up"], "make-up", timeout=900)
    FIGURES["make up to every service healthy (image built)"] = f"{stack.timings['make-up']:.0f} s"
    try:
        yield stack
    finally:
        stack.compose("--profile", "*", "down", "--volumes", "--remove-orphans", name="clean-after")
