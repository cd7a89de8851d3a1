#!/usr/bin/env bash
# Builds the substitute base images that `make test-docker` passes to compose.yaml where Docker
# Hub cannot be reached: a Debian bookworm base made with debootstrap, and on it Python, Node,
# Kafka (from the Maven jars `make run` uses) and Prometheus (Debian's package), laid out as the
# official images are. Nothing else in compose.yaml or the Dockerfiles changes for them.
#
# Each image carries a fingerprint of its inputs as a label, so a rerun on the same engine
# rebuilds nothing. Progress goes to stderr; stdout gets one VARIABLE=image line per image, the
# variables compose.yaml reads. Needs root (debootstrap) and Maven (the Kafka jars).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../../.." && pwd)
prefix=${SUBSTITUTE_IMAGE_PREFIX:-coinstream-substitute}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
label=io.coinstream.substitute.fingerprint
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { echo "base-images: $*" >&2; }
fingerprint_of() { sha256sum "$@" | sha256sum | cut -c1-16; }
built_fingerprint() {
  docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null || true
}

# The Debian base: minbase, with the host's apt sources (bookworm, its updates and security).
debian=$prefix/debian:bookworm
sources=/etc/apt/sources.list.d/debian.sources
fingerprint=$(printf '%s\n%s\n' "$mirror" "$(cat "$sources" 2>/dev/null)" | sha256sum | cut -c1-16)
if [ "$(built_fingerprint "$debian")" != "$fingerprint" ]; then
  command -v debootstrap >/dev/null || {
    say "installing debootstrap ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  say "debootstrap bookworm from $mirror ..."
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  if [ -f "$sources" ]; then
    cp "$sources" "$work/rootfs/etc/apt/sources.list.d/debian.sources"
    rm -f "$work/rootfs/etc/apt/sources.list"
  fi
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin
  tar -C "$work/rootfs" -c . \
    | docker import --change "LABEL $label=$fingerprint" --change 'CMD ["bash"]' - "$debian" >/dev/null
  rm -rf "$work/rootfs"
fi
base_id=$(docker image inspect --format '{{.Id}}' "$debian")

# The Kafka image's jars, fetched on the host as `make setup` fetches the broker's.
mkdir -p "$work/kafka"
cp -r "$here/kafka/." "$work/kafka/"
cp "$project/deploy/local/kafka/log4j2.properties" "$work/kafka/log4j2.properties"
say "fetching the Kafka jars (Maven) ..."
mvn --batch-mode --quiet --settings "$project/deploy/local/maven/settings.xml" \
  --file "$here/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
  -DoutputDirectory="$work/kafka/libs" >&2

build() {  # build VARIABLE IMAGE CONTEXT
  local variable=$1 image=$2 context=$3 fingerprint
  fingerprint=$( (echo "$base_id"; find "$context" -type f -print0 | sort -z | xargs -0 sha256sum \
    | sed "s|$context||") | sha256sum | cut -c1-16)
  if [ "$(built_fingerprint "$image")" != "$fingerprint" ]; then
    say "building $image ..."
    DOCKER_BUILDKIT=0 docker build --quiet --label "$label=$fingerprint" \
      --build-arg "BASE_IMAGE=$debian" --tag "$image" "$context" >/dev/null
  fi
  echo "$variable=$image"
}

build PYTHON_IMAGE "$prefix/python:3.11-bookworm" "$here/python"
build NODE_IMAGE "$prefix/node:bookworm" "$here/node"
build KAFKA_IMAGE "$prefix/kafka:4.1.1" "$work/kafka"
build PROMETHEUS_IMAGE "$prefix/prometheus:bookworm" "$here/prometheus"
