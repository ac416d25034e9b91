#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine it installs what the tests need, then runs
# every test: unit tests, the sandbox contract and client tests, and the tests on real parts.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh --test client   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/peoplesync/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup first" >&2
  exit 1
fi

# OpenLDAP's slapd for the directory tests (Debian's package; the tests run private instances).
source scripts/ensure-slapd.sh
# Samba's AD DC for the Active Directory tests (Debian's packages; the tests run a private domain).
source scripts/ensure-samba.sh
# 389 Directory Server for the directory contract suite (Debian's package; private instances).
source scripts/ensure-389ds.sh

# The SCIM 2.0 server for the SCIM tests (PyPI scim2-server in a venv, cached outside the repo).
SCIM_VENV="$HOME/.cache/peoplesync/scim2-server-0.8.3"
if [[ -z "${PEOPLESYNC_SCIM_SERVER_BIN:-}" && ! -x "$SCIM_VENV/bin/scim2-server" ]]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "[test] installing python3-venv" >&2
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
  fi
  echo "[test] installing scim2-server 0.8.3 into $SCIM_VENV" >&2
  rm -rf "$SCIM_VENV"
  python3 -m venv "$SCIM_VENV"
  "$SCIM_VENV/bin/pip" install -q scim2-server==0.8.3
fi

# The test control plane (kube-apiserver, kubectl, etcd, helm) built from Go modules, cached
# outside the repo by version; a no-op when already built.
if [[ -z "${PEOPLESYNC_CONTROLPLANE_BIN:-}" ]]; then
  PEOPLESYNC_CONTROLPLANE_BIN="$(bash scripts/controlplane/build.sh | tail -n 1)"
  export PEOPLESYNC_CONTROLPLANE_BIN
fi

# Prometheus's promtool for the alert tests, built from its Go module and cached by version.
if [[ -z "${PEOPLESYNC_PROMTOOL:-}" ]]; then
  PEOPLESYNC_PROMTOOL="$(bash scripts/promtool.sh | tail -n 1)"
  export PEOPLESYNC_PROMTOOL
fi

cargo test --locked --workspace --all-targets "$@"
