#!/usr/bin/env bash
# The README's first command: the main job on its local default. It starts a HollyHR sandbox with
# 1,000 people and a private OpenLDAP slapd, runs `peoplesync sync` (a full cycle), changes a person
# through the HollyHR API and runs the incremental cycle that carries the change.
#
#   ./scripts/demo.sh [--people N] [--seed S]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/peoplesync/target}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup first" >&2
  exit 1
fi
source scripts/ensure-slapd.sh
echo "[demo] building peoplesync (the first build takes a few minutes)" >&2
cargo build --locked --quiet --bin peoplesync
exec "$CARGO_TARGET_DIR/debug/peoplesync" demo "$@"
