//go:build tools

// Package tools pins the etcd server PeopleSync's test control plane runs
// (Debian's etcd is too old for Kubernetes 1.34; see scripts/controlplane/build.sh).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
