#!/usr/bin/env bash
# The README's first command: the main job on its local default. On a fresh machine it installs
# what is missing (slapd), builds PeopleSync and the local control plane (kube-apiserver + etcd
# from their Go modules, cached by version; the first build shows its progress and takes a few
# minutes), then runs `peoplesync-sandbox demo`: the operator on that control plane, a HollyHR sandbox
# with 1,000 people and a private slapd; a PeopleSync is applied and reaches Ready, and a change
# made through the HollyHR API reaches the directory through the signed webhook. In a terminal
# everything keeps running until Ctrl-C; otherwise (CI) it stops after the showcase.
#
#   ./scripts/demo.sh [--people N] [--seed S] [--exit] [--standalone] [--source hollyhr|personio]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/peoplesync/target}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup first" >&2
  exit 1
fi
source scripts/ensure-slapd.sh
if [[ " $* " != *" --standalone "* && -z "${PEOPLESYNC_CONTROLPLANE_BIN:-}" ]]; then
  echo "[demo] the local control plane (built once, then cached by version)" >&2
  PEOPLESYNC_CONTROLPLANE_BIN="$(bash scripts/controlplane/build.sh | tail -n 1)"
  export PEOPLESYNC_CONTROLPLANE_BIN
fi
echo "[demo] building peoplesync and its sandboxes (the first build takes a few minutes)" >&2
cargo build --locked --quiet -p peoplesync-sandbox --bin peoplesync-sandbox
exec "$CARGO_TARGET_DIR/debug/peoplesync-sandbox" demo "$@"
