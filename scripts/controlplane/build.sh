#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kubectl, etcd) and helm from their Go modules
# into a cache outside the repo, keyed by version; does nothing when the binaries are there.
# There is no container engine and no prebuilt download on these machines (see README).
#
#   scripts/controlplane/build.sh            # prints the bin directory on its last line
#   PEOPLESYNC_CACHE=/somewhere scripts/controlplane/build.sh
set -euo pipefail

KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.21.4

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PEOPLESYNC_CACHE:-$HOME/.cache/peoplesync}"
bin="$cache/controlplane/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
mkdir -p "$bin"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
# Builds run on 2 cores; keep the machine usable for whatever else runs.
nice_cmd=(nice -n 10)

step() { printf '[controlplane] %s\n' "$*" >&2; }

build_kube() {
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION \
    -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for cmd in kube-apiserver kubectl; do
    if [[ -x "$bin/$cmd" ]]; then continue; fi
    step "building $cmd $KUBE_VERSION from its Go module (first time only; ~several minutes on 2 cores)"
    local started=$SECONDS
    (cd "$here/kube" && "${nice_cmd[@]}" go build -trimpath -pgo=off -ldflags "$ldflags" \
      -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$bin/$cmd.tmp" "$bin/$cmd"
    step "built $cmd in $((SECONDS - started)) s"
  done
}

build_etcd() {
  if [[ -x "$bin/etcd" ]]; then return; fi
  step "building etcd $ETCD_VERSION from its Go module"
  local started=$SECONDS
  (cd "$here/etcd" && "${nice_cmd[@]}" go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp" "$bin/etcd"
  step "built etcd in $((SECONDS - started)) s"
}

build_helm() {
  if [[ -x "$bin/helm" ]]; then return; fi
  step "building helm $HELM_VERSION from its Go module"
  local started=$SECONDS
  GOBIN="$bin/.helm-tmp" "${nice_cmd[@]}" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$bin/.helm-tmp/helm" "$bin/helm" && rmdir "$bin/.helm-tmp"
  step "built helm in $((SECONDS - started)) s"
}

what="${1:-all}"
case "$what" in
  all) build_etcd; build_kube; build_helm ;;
  kube) build_kube ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  *) echo "usage: $0 [all|kube|etcd|helm]" >&2; exit 2 ;;
esac
echo "$bin"
