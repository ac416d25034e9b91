#!/usr/bin/env bash
# Builds Prometheus's promtool from its Go module into a cache outside the repo, keyed by
# version (like the control plane); does nothing when it is there. Prints the binary's path on
# its last line. tests/alerts.rs runs it (`promtool check rules`, `promtool test rules`).
set -euo pipefail

# Prometheus v3.x's Go module version (github.com/prometheus/prometheus v0.316.0).
PROMETHEUS_MODULE_VERSION=v0.316.0

cache="${PEOPLESYNC_CACHE:-$HOME/.cache/peoplesync}"
bin="$cache/promtool-$PROMETHEUS_MODULE_VERSION"
if [[ ! -x "$bin/promtool" ]]; then
  command -v go >/dev/null 2>&1 || { echo "go is missing (needed to build promtool)" >&2; exit 1; }
  echo "[promtool] building promtool $PROMETHEUS_MODULE_VERSION from its Go module (first time only; several minutes on 2 cores)" >&2
  started=$SECONDS
  mkdir -p "$bin"
  GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$bin/.tmp" nice -n 10 \
    go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >&2
  mv "$bin/.tmp/promtool" "$bin/promtool" && rmdir "$bin/.tmp"
  echo "[promtool] built in $((SECONDS - started)) s" >&2
fi
echo "$bin/promtool"
