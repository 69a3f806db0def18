// Package kube exists only so that this wrapper module has a package; the
// binaries (kube-apiserver, kubectl, and the node's kube-controller-manager,
// kube-scheduler and kubelet) are built with `go build k8s.io/kubernetes/cmd/...`
// from here, all from one module so one Go build cache serves them all.
package kube
