//go:build tools

// Package tools pins the Kubernetes control-plane binaries PeopleSync's tests run
// (kube-apiserver, kubectl), built from their Go modules because no container engine or
// prebuilt download is available (see scripts/controlplane/build.sh).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
