// Package kube exists only so that this wrapper module has a package; the
// binaries are built with `go build k8s.io/kubernetes/cmd/...` from here.
package kube
