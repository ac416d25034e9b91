#!/usr/bin/env bash
# The fault-injection trials at full size (issue #17), printing their figures:
#   R2: 20 kill -9 trials during a 10,000-person full sync, each checked against an undisturbed
#       reference run (the whole directory, the checkpoint, deprovisions);
#   R2 webhook burst: 10 kills in the middle of 200 employment changes.
#   R2 incremental: 10 kills during an incremental cycle of a 10,000-person tenant, each from a
#       non-empty checkpoint (a quarter of the people changed).
#   Failover: the leader of two replicas killed in the middle of 500 changes.
#   Fencing: the leader cut off from the API server stops writing before the standby leads.
#   Control plane: kube-apiserver and etcd killed mid-sync and mid-burst.
#   Receiver flood: 10,000 idle connections and 20 slow-loris clients while changes are delivered.
#   R12: 4,096 connections trickling 64 KiB heads and 256 KiB bodies before authentication.
#   R14: 2,000 Secrets of 512 KiB (1 GiB) across namespaces, before and during operation.
#   R13: hostile names on OpenLDAP, 389-ds and Samba AD.
#   R8: no secret and no personal value outside the directory (logs, Events, status, metrics).
#   R1: 10,000 hostile deliveries (the webhook bench): 0 accepted, 0 reads, the directory as it was.
# CI runs the same tests with 5 trials of 5,000 people and 2 bursts (`./scripts/test.sh`).
#
#   ./scripts/trials.sh                          # the full run
#   PEOPLESYNC_TRIAL_SEED=123 ./scripts/trials.sh  # replays a printed seed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/peoplesync/target}"
source scripts/ensure-slapd.sh
source scripts/ensure-samba.sh
source scripts/ensure-389ds.sh
if [[ -z "${PEOPLESYNC_CONTROLPLANE_BIN:-}" ]]; then
  PEOPLESYNC_CONTROLPLANE_BIN="$(bash scripts/controlplane/build.sh | tail -n 1)"
  export PEOPLESYNC_CONTROLPLANE_BIN
fi
export PEOPLESYNC_TRIALS="${PEOPLESYNC_TRIALS:-20}"
export PEOPLESYNC_TRIAL_PEOPLE="${PEOPLESYNC_TRIAL_PEOPLE:-10000}"
export PEOPLESYNC_BURST_TRIALS="${PEOPLESYNC_BURST_TRIALS:-10}"
export PEOPLESYNC_INCREMENTAL_TRIALS="${PEOPLESYNC_INCREMENTAL_TRIALS:-10}"
export PEOPLESYNC_INCREMENTAL_PEOPLE="${PEOPLESYNC_INCREMENTAL_PEOPLE:-10000}"
export PEOPLESYNC_R12_CONNECTIONS="${PEOPLESYNC_R12_CONNECTIONS:-4096}"
export PEOPLESYNC_R14_SECRETS="${PEOPLESYNC_R14_SECRETS:-2000}"
cargo test --release --locked --test faults -- --nocapture --test-threads 1 "$@"
# The rows outside the fault trials (no seed to replay: each runs its whole input).
if [[ $# -eq 0 ]]; then
  cargo test --release --locked --test directory_contract r13_ -- --nocapture
  cargo test --release --locked --test privacy -- --nocapture
  PEOPLESYNC_BENCH_BAD=10000 cargo bench --locked --bench webhooks
fi
