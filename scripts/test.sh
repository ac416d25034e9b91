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
if [[ ! -x /usr/sbin/slapd ]]; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing slapd and ldap-utils" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null
  else
    echo "slapd is missing: apt-get install slapd ldap-utils" >&2
    exit 1
  fi
fi

# The test control plane (kube-apiserver, kubectl, etcd, helm) built from Go modules, cached
# outside the repo by version; a no-op when already built.
if [[ -z "${PEOPLESYNC_CONTROLPLANE_BIN:-}" ]]; then
  PEOPLESYNC_CONTROLPLANE_BIN="$(bash scripts/controlplane/build.sh | tail -n 1)"
  export PEOPLESYNC_CONTROLPLANE_BIN
fi

cargo test --locked --all-targets "$@"
