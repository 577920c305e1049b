# Shared by the deploy/k8s-local scripts (sourced, not run): versions, paths, addresses.
# shellcheck shell=bash

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../versions.env
source "$ROOT/deploy/versions.env"

# Built binaries and image inputs survive `make k8s-down`: a second `make k8s-up` reuses them.
CACHE=${TICKMESH_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tickmesh/k8s}
BIN=$CACHE/bin/kubernetes-$KUBERNETES_VERSION
# Cluster state (etcd, containerd, kubelet, volumes) and run files: removed by `make k8s-down`.
STATE=${TICKMESH_K8S_STATE:-/var/lib/tickmesh-k8s}
RUN=/run/tickmesh-k8s
LOGS=$STATE/logs
PKI=$STATE/pki

# Every process of the cluster runs inside this network namespace; the host reaches it
# through one veth pair. Nothing binds on the host's own addresses or ports.
NETNS=tickmesh-k8s
VETH_HOST=tmk8s-host
VETH_NS=tmk8s-node
HOST_IP=10.233.128.1
NODE_IP=10.233.128.2
LINK_PREFIX=30
CLUSTER_RANGE=10.233.0.0/16 # everything below; blackholed on the host
SERVICE_CIDR=10.233.0.0/18
POD_CIDR=10.233.64.0/24
BRIDGE=tmk8s-br0
DNS_IP=$NODE_IP # CoreDNS runs beside the kubelet, on the node address
APISERVER=https://$NODE_IP:6443
NODE_NAME=tickmesh-node
KUBECONFIG_ADMIN=$STATE/admin.kubeconfig

CONTAINERD_SOCK=$RUN/containerd/containerd.sock
DOCKER_SOCK=$RUN/docker.sock
DOCKER_ROOT=$CACHE/docker # the image builder's layers: a warm rebuild takes seconds
DOCKER=/usr/bin/docker    # Debian's docker.io client (BuildKit built in)

log() { printf '[k8s-local %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	printf 'k8s-local: %s\n' "$*" >&2
	exit 2
}
need_root() { [[ $EUID -eq 0 ]] || die "must run as root (network namespaces, mounts, containerd)"; }
# nsenter and not `ip netns exec`: only the network namespace changes, so the kubelet and
# containerd see the same mounts.
in_ns() { nsenter --net="/run/netns/$NETNS" "$@"; }
kctl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
dockerc() { DOCKER_HOST=unix://$DOCKER_SOCK DOCKER_BUILDKIT=1 "$DOCKER" "$@"; }
