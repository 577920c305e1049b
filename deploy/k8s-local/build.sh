#!/usr/bin/env bash
# Builds the cluster's Go programs once into the cache (lib.sh: $BIN): kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl from the
# k8s.io/kubernetes module, CoreDNS from its module, and the pod sandbox (pause).
# A second run finds them and returns at once.
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || die "go not found: the cluster's binaries are built with the Go toolchain"

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=()
for c in "${K8S_CMDS[@]}" coredns pause; do [[ -x $BIN/$c ]] || missing+=("$c"); done
if ((${#missing[@]} == 0)); then
	log "binaries cached in $BIN"
	exit 0
fi
mkdir -p "$BIN"
export GOWORK=off CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod

# The k8s.io/kubernetes module cannot be built with `go install module@version`: its go.mod
# replaces the k8s.io/* staging modules with ./staging paths. Build from a copy whose
# replaces point at the published staging modules of the same release (v1.x.y -> v0.x.y).
src=$CACHE/src/kubernetes-$KUBERNETES_VERSION
if [[ ! -f $src/.prepared ]]; then
	log "fetching k8s.io/kubernetes@$KUBERNETES_VERSION (go module proxy)"
	dir=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir ]] || die "go mod download k8s.io/kubernetes@$KUBERNETES_VERSION gave no directory"
	rm -rf "$src" && mkdir -p "$(dirname "$src")"
	cp -r "$dir" "$src" && chmod -R u+w "$src"
	rm -rf "$src/vendor" "$src/go.work" "$src/go.work.sum"
	staging=v0.${KUBERNETES_VERSION#v1.}
	sed -i -E "s#=> \./staging/src/(k8s\.io/[A-Za-z0-9._-]+)#=> \1 $staging#" "$src/go.mod"
	touch "$src/.prepared"
fi
log "building ${missing[*]}: on 2 cores about 15 minutes the first time"
for c in "${K8S_CMDS[@]}"; do
	[[ -x $BIN/$c ]] && continue
	log "building $c $KUBERNETES_VERSION"
	(cd "$src" && nice -n 10 go build -trimpath -ldflags "-s -w \
		-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
		-X k8s.io/component-base/version.gitMajor=1 \
		-X k8s.io/component-base/version.gitMinor=${KUBERNETES_VERSION#v1.}" \
		-o "$BIN/$c.tmp" "./cmd/$c") && mv "$BIN/$c.tmp" "$BIN/$c"
done
if [[ ! -x $BIN/coredns ]]; then
	log "building coredns $COREDNS_VERSION"
	GOBIN=$BIN.coredns nice -n 10 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
	mv "$BIN.coredns/coredns" "$BIN/coredns" && rmdir "$BIN.coredns"
fi
if [[ ! -x $BIN/pause ]]; then
	log "building pause"
	(cd "$ROOT/deploy/k8s-local/pause" && GOFLAGS= GO111MODULE=off go build -trimpath -ldflags "-s -w" -o "$BIN/pause" main.go)
fi
log "binaries ready in $BIN"
