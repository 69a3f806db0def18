#!/usr/bin/env bash
# Installs every tool the test world, the chart checks and the benchmarks use, at
# pinned versions, and links them into target/testenv/bin.
#
# Go tools are built from source through the Go module proxy (nothing else is
# reachable) and cached per version under $PROMOTER_TOOLS_CACHE, so a fresh
# checkout on a machine that built them once only relinks. The Go build and
# module caches stay in their default places. skopeo and the node's runtime
# (containerd, runc, the CNI plugins) and the busybox the node's images are made
# of come from Debian.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${PROMOTER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-promoter}
bin=$root/target/testenv/bin
mkdir -p "$bin" "$cache/tools"

# name|go package@version — the pins, in one place.
go_tools=(
  "registry|github.com/distribution/distribution/v3/cmd/registry@v3.1.2"
  "cosign|github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5"
  "kubeconform|github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0"
  "crane|github.com/google/go-containerregistry/cmd/crane@v0.22.1"
  "regctl|github.com/regclient/regclient/cmd/regctl@v0.11.7"
  "regsync|github.com/regclient/regclient/cmd/regsync@v0.11.7"
)

say() { printf 'tools: %s\n' "$*"; }

link() { ln -sfn "$1" "$bin/$2"; }

install_go_tool() {
  local name=$1 spec=$2
  local version=${spec##*@}
  local dir=$cache/tools/$name-$version
  if [ ! -x "$dir/$name" ]; then
    say "building $name $version (cached afterwards)"
    mkdir -p "$dir.tmp"
    GOBIN=$dir.tmp go install "$spec"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir/$name" "$name"
}

# Builds binaries (name=package) of a wrapper module under tests/testenv/go/<module>
# with the given -ldflags; the cache key is the module's go.mod + go.sum and the
# flags, so a version bump rebuilds and nothing else does.
install_wrapped() {
  local module=$1 ldflags=$2; shift 2
  local src=$here/go/$module
  local key
  key=$( (cat "$src/go.mod" "$src/go.sum"; echo "$ldflags") | sha256sum | cut -c1-16)
  local dir=$cache/tools/$module-$key
  local entry missing=0
  for entry in "$@"; do [ -x "$dir/${entry%%=*}" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    say "building ${*#*=} from $src (cached afterwards)"
    mkdir -p "$dir.tmp"
    for entry in "$@"; do
      (cd "$src" && go build -ldflags="$ldflags" -o "$dir.tmp/${entry%%=*}" "${entry#*=}")
    done
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  for entry in "$@"; do link "$dir/${entry%%=*}" "${entry%%=*}"; done
}

# helm, linked as its own Makefile links it: its version, and the Kubernetes version
# of its client libraries (client-go v0.N → 1.N). Without them `helm template` and
# `helm lint` assume Kubernetes 1.20 and refuse a chart's kubeVersion.
install_helm() {
  local version=$1
  local gomod client_go minor ldflags
  gomod=$(go mod download -json "helm.sh/helm/v3@$version" | "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
  client_go=$(awk '$1 == "k8s.io/client-go" {print $2}' "$gomod")
  minor=$(echo "$client_go" | cut -d. -f2)
  ldflags="-X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local pkg
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags="$ldflags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  local dir=$cache/tools/helm-$version-k8s1.$minor
  if [ ! -x "$dir/helm" ]; then
    say "building helm $version for Kubernetes 1.$minor (cached afterwards)"
    mkdir -p "$dir.tmp"
    GOBIN=$dir.tmp go install -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@$version"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir/helm" helm
}

# cargo-cyclonedx writes the SBOM of the crates that `make release` attaches to the
# image; built with `cargo install --locked` (in a build folder of its own, not
# CARGO_TARGET_DIR) and cached per version.
install_cargo_tool() {
  local name=$1 version=$2
  local dir=$cache/tools/$name-$version
  if [ ! -x "$dir/bin/$name" ]; then
    say "building $name $version with cargo (cached afterwards)"
    rm -rf "$dir.tmp"
    env -u CARGO_TARGET_DIR cargo install --locked --quiet --root "$dir.tmp" "$name@$version"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir/bin/$name" "$name"
}

install_python() {
  local key
  key=$(cat "$here/requirements.txt" | sha256sum | cut -c1-16)
  local venv=$cache/venv-$key
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    say "creating the Python venv (moto, the ECR Public stand-in's libraries)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    touch "$venv/.complete"
  fi
  # A wrapper, not a link: Python finds its venv from the path it was started by.
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$venv/bin/python" > "$bin/python"
  chmod +x "$bin/python"
}

# Debian packages (name|version series): the node's runtime and skopeo.
apt_packages=(
  "containerd|1.6"
  "runc|1.1"
  "containernetworking-plugins|1.1"
  "busybox-static|1:1.35"
  "skopeo|1.9"
)
# --- Argo CD: its Redis (the application controller's and repo server's cache).
apt_packages+=("redis-server|5:7.0")

apt_install() {
  local missing=() entry name
  for entry in "${apt_packages[@]}"; do
    name=${entry%%|*}
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' || missing+=("$name")
  done
  [ "${#missing[@]}" = 0 ] && return
  say "installing ${missing[*]} from Debian"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

check_apt_versions() {
  local entry name series version
  for entry in "${apt_packages[@]}"; do
    name=${entry%%|*} series=${entry#*|}
    version=$(dpkg-query -W -f='${Version}' "$name")
    case "$version" in
      "$series".*) ;;
      *) say "$name $version installed, expected $series.x (Debian bookworm)"; exit 1 ;;
    esac
  done
}

# The first `name` on PATH that is not one of our own links: after
# `source target/testenv/env` our bin folder comes first on PATH, and linking a
# tool to what `command -v` finds there would link it to itself.
system_command() {
  local dir
  local IFS=:
  for dir in $PATH; do
    [ "$(readlink -f "$dir")" = "$(readlink -f "$bin")" ] && continue
    if [ -x "$dir/$1" ] && [ ! -d "$dir/$1" ]; then
      readlink -f "$dir/$1"
      return
    fi
  done
  for dir in /usr/sbin /usr/bin /sbin /bin; do
    [ -x "$dir/$1" ] && { readlink -f "$dir/$1"; return; }
  done
  say "$1 not found after installing its package"
  exit 1
}

install_debian_tools() {
  apt_install
  check_apt_versions
  local name
  for name in skopeo containerd ctr runc busybox redis-server; do
    link "$(system_command "$name")" "$name"
  done
}

# promtool: `promtool check rules` and `promtool test rules` on the chart's alerts
# (make chart-check). Built without Prometheus's service discoveries (-tags
# remove_all_sd drops the cloud SDKs; only the rule commands are used), cached per
# version and tags like the other Go tools.
promtool_spec=github.com/prometheus/prometheus/cmd/promtool@v0.316.0
promtool_tags=remove_all_sd
install_promtool() {
  local dir=$cache/tools/promtool-${promtool_spec##*@}-$promtool_tags
  if [ ! -x "$dir/promtool" ]; then
    say "building promtool ${promtool_spec##*@} (-tags $promtool_tags; cached afterwards)"
    mkdir -p "$dir.tmp"
    GOBIN=$dir.tmp go install -tags "$promtool_tags" "$promtool_spec"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir/promtool" promtool
}

# kubeconform's schemas, made offline (tests/chart/kube_schemas.py) from the OpenAPI
# document of the pinned Kubernetes release (api/openapi-spec/swagger.json in the
# k8s.io/kubernetes module) and from the Prometheus Operator's ServiceMonitor and
# PrometheusRule CRDs (the chart's optional ServiceMonitor and alerts), both from the
# Go module proxy. Cached per version, CRD list and converter; our own CRDs are
# converted at check time (make chart-check).
prometheus_operator_version=v0.85.0
prometheus_operator_crds="servicemonitors prometheusrules"
module_dir() {
  (cd "$here/go/kube" && go mod download -json "$1") | "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}
install_kube_schemas() {
  local kube_version=$1
  local key
  key=$( (echo "$kube_version $prometheus_operator_version $prometheus_operator_crds"; cat "$root/tests/chart/kube_schemas.py") | sha256sum | cut -c1-16)
  local dir=$cache/kube-schemas/$kube_version-$key
  if [ ! -f "$dir/.complete" ]; then
    say "making kubeconform schemas for Kubernetes $kube_version (cached afterwards)"
    local kube_dir prom_dir
    kube_dir=$(module_dir "k8s.io/kubernetes@$kube_version")
    prom_dir=$(module_dir "github.com/prometheus-operator/prometheus-operator@$prometheus_operator_version")
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    "$bin/python" "$root/tests/chart/kube_schemas.py" openapi "$kube_dir/api/openapi-spec/swagger.json" "$dir.tmp"
    local crd crd_files=()
    for crd in $prometheus_operator_crds; do
      crd_files+=("$prom_dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml")
    done
    "$bin/python" "$root/tests/chart/kube_schemas.py" crds "$dir.tmp" "${crd_files[@]}"
    touch "$dir.tmp/.complete"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir" "$root/target/testenv/kube-schemas"
}

install_python
install_wrapped etcd "" etcd=go.etcd.io/etcd/server/v3
# Kubernetes binaries report their version from ldflags (helm checks it against a
# chart's kubeVersion); take it from the wrapper's go.mod.
kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/go/kube/go.mod")
kube_minor=$(echo "$kube_version" | cut -d. -f2)
kube_ldflags="-X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kube_minor -X k8s.io/component-base/version.gitTreeState=clean"
kube_ldflags="$kube_ldflags -X k8s.io/client-go/pkg/version.gitVersion=$kube_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$kube_minor"
install_wrapped kube "$kube_ldflags" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kubectl=k8s.io/kubernetes/cmd/kubectl \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubelet=k8s.io/kubernetes/cmd/kubelet
for entry in "${go_tools[@]}"; do install_go_tool "${entry%%|*}" "${entry#*|}"; done
install_helm v3.22.0
install_cargo_tool cargo-cyclonedx 0.5.9
install_promtool
install_kube_schemas "$kube_version"

# --- Argo CD (tests/gitops, `make env-up-argocd`) -------------------------------
# One `argocd` binary serves every component; it dispatches on the name it is
# started as, so the application controller, the repo server and the API server
# are links to it, and `argocd` is the CLI. Built from the wrapper module
# tests/testenv/go/argocd at the release its go.mod pins; that release needs a
# newer Go than the machine's, which the go command fetches from the module
# proxy (GOTOOLCHAIN=auto). Argo CD's CRDs (Application, AppProject) come from
# the same module and are cached beside the binary.
install_argocd() {
  local src=$here/go/argocd
  local version ldflags key
  version=$(awk '$1 == "require" && $2 == "github.com/argoproj/argo-cd/v3" {print $3}' "$src/go.mod")
  # The version `argocd version` reports, as Argo CD's own Makefile sets it.
  ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${version#v}"
  key=$( (cat "$src/go.mod" "$src/go.sum"; echo "$ldflags") | sha256sum | cut -c1-16)
  local dir=$cache/tools/argocd-$key
  if [ ! -x "$dir/argocd" ] || [ ! -x "$dir/git-verify-wrapper.sh" ]; then
    say "building Argo CD $version from $src (cached afterwards)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/crds"
    (cd "$src" && GOTOOLCHAIN=auto go build -ldflags="$ldflags" -o "$dir.tmp/argocd" github.com/argoproj/argo-cd/v3/cmd)
    local module
    module=$(cd "$src" && GOTOOLCHAIN=auto go mod download -json "github.com/argoproj/argo-cd/v3@$version" \
      | "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    cp "$module/manifests/crds/application-crd.yaml" "$module/manifests/crds/appproject-crd.yaml" "$dir.tmp/crds/"
    # The repo server runs these two scripts of Argo CD's image (it verifies
    # commit signatures, a no-op for unsigned commits, before every manifest).
    install -m 0755 "$module/hack/git-verify-wrapper.sh" "$module/hack/gpg-wrapper.sh" "$dir.tmp/"
    chmod -R u+w "$dir.tmp"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  local name
  for name in argocd argocd-application-controller argocd-repo-server argocd-server; do
    link "$dir/argocd" "$name"
  done
  link "$dir/git-verify-wrapper.sh" git-verify-wrapper.sh
  link "$dir/gpg-wrapper.sh" gpg-wrapper.sh
  ln -sfn "$dir/crds" "$root/target/testenv/argocd-crds"
}
install_argocd
install_debian_tools
say "ready in $bin"
