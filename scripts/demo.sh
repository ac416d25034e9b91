#!/usr/bin/env bash
# The README's first command: the main job on its local default. Today it starts an in-process
# HollyHR sandbox with 1,000 people and lists everyone through PeopleSync's client.
#
#   ./scripts/demo.sh [--people N] [--seed S]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/peoplesync/target}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup first" >&2
  exit 1
fi
echo "[demo] building peoplesync (the first build takes a few minutes)" >&2
cargo build --locked --quiet --bin peoplesync
exec "$CARGO_TARGET_DIR/debug/peoplesync" demo "$@"
