#!/bin/sh
# Trusts the extra CA bundle given to a build as the `ca_bundle` secret, for builds behind a
# TLS-intercepting proxy. Each certificate joins the system store (update-ca-certificates), which
# pip and uv read through PIP_CERT and SSL_CERT_FILE, and from which Debian's ca-certificates-java
# builds Java's trust store when a JRE is installed afterwards. A missing bundle, or one with no
# certificate in it (the default placeholder), changes nothing.
set -eu
bundle=${1:-/run/secrets/ca_bundle}
if [ ! -s "$bundle" ] || ! grep -q 'BEGIN CERTIFICATE' "$bundle"; then
  exit 0
fi
awk '/BEGIN CERTIFICATE/ { count++; inside = 1 }
     inside { print > ("/usr/local/share/ca-certificates/coinstream-build-" count ".crt") }
     /END CERTIFICATE/ { inside = 0 }' "$bundle"
update-ca-certificates >/dev/null
echo "trusting $(grep -c 'BEGIN CERTIFICATE' "$bundle") extra CA certificate(s) from the build's ca_bundle"
