// Package argocd exists only so that this wrapper module has a package; the
// binary is built with `go build github.com/argoproj/argo-cd/v3/cmd` from here
// and linked as argocd-application-controller, argocd-repo-server and argocd.
package argocd
