// Package etcd exists only so that this wrapper module has a package; the
// binary is built with `go build go.etcd.io/etcd/server/v3` from here.
package etcd
