#!/usr/bin/env bash
# The single-node cluster itself:
#   up     network namespace + veth + routes, certificates, etcd, kube-apiserver,
#          kube-controller-manager, kube-scheduler, containerd (CNI bridge), kubelet,
#          kube-proxy and CoreDNS, every one a process inside the namespace $NETNS
#   down   stop all of it, remove pods, mounts, the namespace and routes, restore sysctls
#   volumes  (again) PersistentVolumes for the StatefulSets' claims
# Pods get their own network namespaces from containerd, on a bridge inside $NETNS. The
# host reaches the cluster (API server, Services, pods) through the veth pair only; a
# blackhole route for the whole cluster range keeps anything addressed to it from leaving
# through the default route.
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# Global kernel settings the kubelet changes (it sets what it needs at start): recorded
# before the first process starts, restored by `down`.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
FIXED_DIRS=(/var/log/pods /var/log/containers /var/lib/cni)
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns)

# The kubelet's pod cgroups: one tree per controller on cgroup v1, one tree on v2.
pod_cgroups() { compgen -G '/sys/fs/cgroup/kubepods' || true; compgen -G '/sys/fs/cgroup/*/kubepods' || true; }

pidfile() { printf '%s/%s.pid\n' "$RUN" "$1"; }
running() { [[ -f $(pidfile "$1") ]] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

start() { # name command... : a background process inside the namespace, log in $LOGS
	local name=$1
	shift
	running "$name" && return
	# nsenter and setsid exec in turn: $! is the component's own pid
	nsenter --net="/run/netns/$NETNS" setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$(pidfile "$name")"
}

wait_for() { # what seconds command...
	local what=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 2; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "$what did not come up within ${secs}s (logs: $LOGS)"
}

network_up() {
	mkdir -p /run/netns
	if ! ip netns list | grep -qw "$NETNS"; then
		log "network namespace $NETNS, veth $VETH_HOST <-> $VETH_NS, routes"
		ip netns add "$NETNS"
		ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
		ip link set "$VETH_NS" netns "$NETNS"
		ip addr add "$HOST_IP/$LINK_PREFIX" dev "$VETH_HOST"
		ip link set "$VETH_HOST" up
		in_ns ip link set lo up
		in_ns ip addr add "$NODE_IP/$LINK_PREFIX" dev "$VETH_NS"
		in_ns ip link set "$VETH_NS" up
		# inside: forwarding between pods and the veth (this namespace's own setting); no
		# default route, so nothing in the cluster reaches beyond this machine
		in_ns sysctl -qw net.ipv4.ip_forward=1
		in_ns ip route add blackhole "$SERVICE_CIDR"
	fi
	# on the host: the cluster range goes to the namespace, and nowhere else even when the
	# veth is gone (the blackhole has the higher metric and stays)
	ip route replace blackhole "$CLUSTER_RANGE" metric 4000
	ip route replace "$SERVICE_CIDR" via "$NODE_IP" dev "$VETH_HOST"
	ip route replace "$POD_CIDR" via "$NODE_IP" dev "$VETH_HOST"
}

pki() {
	[[ -f $PKI/done ]] && return
	log "certificates and tokens in $PKI"
	mkdir -p "$PKI"
	(
		cd "$PKI"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
			-subj /CN=tickmesh-local-ca 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
			-subj /CN=kube-apiserver 2>/dev/null
		printf 'subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' \
			"$NODE_IP" "${SERVICE_CIDR%.*/*}.1" >apiserver.ext
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
			-extfile apiserver.ext -out apiserver.crt 2>/dev/null
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		# static tokens: user,uid,groups. The names are the ones the default RBAC bindings
		# and the Node authorizer know.
		: >tokens.csv
		for u in admin:system:masters kube-controller-manager: kube-scheduler: kube-proxy: \
			"node:system:nodes" coredns:; do
			local name=${u%%:*} group=${u#*:} user token
			case $name in
			admin) user=admin ;;
			node) user=system:node:$NODE_NAME ;;
			coredns) user=tickmesh:coredns ;;
			*) user=system:$name ;;
			esac
			token=$(openssl rand -hex 24)
			printf '%s,%s,%s%s\n' "$token" "$user" "$user" "${group:+,\"$group\"}" >>tokens.csv
			kubeconfig "$STATE/$name.kubeconfig" "$user" "$token"
		done
	)
	cp "$STATE/admin.kubeconfig" "$KUBECONFIG_ADMIN" 2>/dev/null || true
	touch "$PKI/done"
}

kubeconfig() { # file user token
	cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
  - name: tickmesh-local
    cluster:
      server: $APISERVER
      certificate-authority: $PKI/ca.crt
users:
  - name: $2
    user:
      token: $3
contexts:
  - name: tickmesh-local
    context: { cluster: tickmesh-local, user: $2, namespace: default }
current-context: tickmesh-local
KC
	chmod 600 "$1"
}

save_sysctls() {
	[[ -f $STATE/sysctl.saved ]] && return
	for s in "${SYSCTLS[@]}"; do printf '%s=%s\n' "$s" "$(sysctl -n "$s")"; done >"$STATE/sysctl.saved"
}

containerd_config() {
	mkdir -p "$STATE/cni/net.d" "$RUN/containerd"
	cat >"$STATE/containerd.toml" <<TOML
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd/ttrpc.sock"
[debug]
  address = "$RUN/containerd/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "tickmesh.local/pause:1"
  # this machine forbids lowering oom_score_adj; without this every pod fails to start
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
TOML
	cat >"$STATE/cni/net.d/10-tickmesh.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "tickmesh",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
}

kubelet_config() {
	: >"$STATE/resolv.conf" # pods get the cluster DNS only: no upstream outside the machine
	cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The kubelet API is reachable only inside the namespace; the API server uses it for logs.
authentication:
  anonymous: { enabled: true }
  webhook: { enabled: false }
authorization: { mode: AlwaysAllow }
address: $NODE_IP
readOnlyPort: 0
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
podCIDR: $POD_CIDR
failSwapOn: false
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1% }
# no time lost on a shutdown the kubelet never gets to see
shutdownGracePeriod: 0s
YAML
}

up() {
	need_root
	for c in etcd containerd runc nsenter openssl; do
		command -v "$c" >/dev/null || die "$c not found (apt-get install etcd-server containerd runc util-linux openssl)"
	done
	[[ -x /usr/lib/cni/bridge ]] || die "/usr/lib/cni/bridge not found: apt-get install containernetworking-plugins"
	[[ -x $BIN/kube-apiserver && -x $BIN/coredns ]] || die "binaries missing in $BIN: run deploy/k8s-local/build.sh"
	mkdir -p "$STATE" "$RUN" "$LOGS"
	save_sysctls
	[[ -f $STATE/netns.before ]] || ls /run/netns 2>/dev/null >"$STATE/netns.before" || : >"$STATE/netns.before"
	# places the kubelet and the CNI library use whatever their flags say: removed by
	# `down` when `up` created them
	if [[ ! -f $STATE/created.before ]]; then
		for d in "${FIXED_DIRS[@]}" /run/netns $(pod_cgroups); do [[ -e $d ]] && echo "$d"; done >"$STATE/created.before" || true
	fi
	network_up
	pki

	log "etcd"
	start etcd etcd --name tickmesh --data-dir "$STATE/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster tickmesh=http://127.0.0.1:2380 --listen-metrics-urls '' \
		--quota-backend-bytes 1073741824 --snapshot-count 10000
	wait_for etcd 30 in_ns curl -sf http://127.0.0.1:2379/health

	log "kube-apiserver on $APISERVER"
	start kube-apiserver "$BIN/kube-apiserver" \
		--etcd-servers=http://127.0.0.1:2379 \
		--advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port=6443 \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
		--authorization-mode=Node,RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
		--enable-admission-plugins=NodeRestriction --allow-privileged=true \
		--kubelet-preferred-address-types=InternalIP \
		--endpoint-reconciler-type=lease --profiling=false --v=1
	wait_for kube-apiserver 120 kctl get --raw /readyz

	log "kube-controller-manager, kube-scheduler"
	start kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
		--use-service-account-credentials=true --leader-elect=false \
		--bind-address=127.0.0.1 --secure-port=10257 --profiling=false --v=1
	start kube-scheduler "$BIN/kube-scheduler" \
		--kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--leader-elect=false --bind-address=127.0.0.1 --secure-port=10259 --profiling=false --v=1

	log "containerd, kubelet"
	containerd_config
	start containerd containerd --config "$STATE/containerd.toml"
	wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
	bash "$ROOT/deploy/k8s-local/images.sh" load
	kubelet_config
	start kubelet "$BIN/kubelet" --config="$STATE/kubelet.yaml" \
		--kubeconfig="$STATE/node.kubeconfig" --root-dir="$STATE/kubelet" \
		--hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1

	log "kube-proxy, CoreDNS"
	# --masquerade-all: pod-to-Service traffic between pods on the same bridge returns
	# through the node, without br_netfilter. The conntrack settings are global: left alone.
	start kube-proxy "$BIN/kube-proxy" --kubeconfig="$STATE/kube-proxy.kubeconfig" \
		--hostname-override="$NODE_NAME" --cluster-cidr="$POD_CIDR" --proxy-mode=iptables \
		--masquerade-all --conntrack-max-per-core=0 --conntrack-min=0 \
		--conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
		--metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 --v=1
	kctl apply --server-side -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: tickmesh:coredns }
rules:
  - apiGroups: ['']
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: tickmesh:coredns }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: tickmesh:coredns }
subjects:
  - { apiGroup: rbac.authorization.k8s.io, kind: User, name: tickmesh:coredns }
YAML
	cat >"$STATE/Corefile" <<COREFILE
# cluster names only: no forwarding, so no query leaves the machine
.:53 {
    bind $DNS_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig tickmesh-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
COREFILE
	start coredns "$BIN/coredns" -conf "$STATE/Corefile"

	wait_for "node $NODE_NAME Ready" 120 kctl wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
	volumes
	log "cluster up: KUBECONFIG=$KUBECONFIG_ADMIN"
}

# PersistentVolumes for the StatefulSets' claims (no provisioner here): host directories,
# each bound in advance to the claim that will ask for it. A volume whose claim was deleted
# (with the namespace) is emptied and offered again.
volumes() {
	local claim phase
	for claim in data-nats-0 data-mysql-0; do
		phase=$(kctl get pv "tickmesh-$claim" -o jsonpath='{.status.phase}' 2>/dev/null || true)
		if [[ -n $phase && $phase != Bound ]]; then
			kctl delete pv "tickmesh-$claim" --wait=true >/dev/null
			rm -rf "$STATE/volumes/$claim"
		fi
		mkdir -p "$STATE/volumes/$claim"
		chmod 0777 "$STATE/volumes/$claim"
		kctl apply --server-side -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: tickmesh-$claim
spec:
  capacity: { storage: 10Gi }
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ''
  claimRef: { namespace: tickmesh, name: $claim }
  hostPath: { path: $STATE/volumes/$claim, type: Directory }
YAML
	done
}

stop_one() {
	local name=$1 pid i
	[[ -f $(pidfile "$name") ]] || return 0
	pid=$(cat "$(pidfile "$name")")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 40; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$(pidfile "$name")"
}

kill_ours() { # every process whose command line contains this path: TERM, then KILL
	local pids=() p i
	for p in /proc/[0-9]*; do
		[[ ${p#/proc/} == "$$" ]] && continue
		grep -qaF -- "$1" "$p/cmdline" 2>/dev/null && pids+=("${p#/proc/}")
	done
	((${#pids[@]})) || return 0
	kill "${pids[@]}" 2>/dev/null || true
	for ((i = 0; i < 40; i++)); do
		kill -0 "${pids[@]}" 2>/dev/null || return 0
		sleep 0.25
	done
	kill -9 "${pids[@]}" 2>/dev/null || true
	sleep 0.5
}

unmount_under() { # every mount below a directory, deepest first
	local dir=$1
	awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

down() {
	need_root
	log "stopping the cluster"
	for c in kubelet kube-proxy kube-scheduler kube-controller-manager coredns; do stop_one "$c"; done
	kill_ours "$BIN/kube"
	if running containerd; then
		# every container and sandbox through containerd: tasks killed, then removed
		local ids id
		ids=$(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null || true)
		for id in $ids; do ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
		sleep 1
		for id in $ids; do ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks rm -f "$id" >/dev/null 2>&1 || true; done
	fi
	stop_one containerd
	kill_ours "$STATE/containerd.toml"
	# shims of this containerd (their command line names its socket)
	kill_ours "$RUN/containerd"
	# container processes that outlived their shims: those in the pod cgroups `up` created
	if [[ -f $STATE/created.before ]] && ! grep -q kubepods "$STATE/created.before"; then
		local left
		left=$(pod_cgroups | while read -r d; do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u || true)
		if [[ -n $left ]]; then
			kill -9 $left 2>/dev/null || true
			sleep 1
		fi
	fi
	stop_one kube-apiserver
	stop_one etcd
	# and whatever outlived its pid file: every process naming this cluster's files
	kill_ours "$BIN/"
	kill_ours "$STATE/"
	bash "$ROOT/deploy/k8s-local/images.sh" stop
	unmount_under "$STATE"
	unmount_under "$RUN"
	# pod network namespaces containerd created (those not there before `up`)
	if [[ -f $STATE/netns.before ]]; then
		for ns in $(ls /run/netns 2>/dev/null); do
			[[ $ns == cni-* ]] && ! grep -qx "$ns" "$STATE/netns.before" && ip netns delete "$ns" 2>/dev/null || true
		done
	fi
	ip netns list | grep -qw "$NETNS" && ip netns delete "$NETNS"
	ip link show "$VETH_HOST" >/dev/null 2>&1 && ip link delete "$VETH_HOST"
	ip route del "$SERVICE_CIDR" 2>/dev/null || true
	ip route del "$POD_CIDR" 2>/dev/null || true
	ip route del blackhole "$CLUSTER_RANGE" metric 4000 2>/dev/null || true
	if [[ -f $STATE/created.before ]]; then
		for d in "${FIXED_DIRS[@]}"; do
			grep -qxF "$d" "$STATE/created.before" || rm -rf "$d"
		done
		# `ip netns add` made /run/netns a mount point; gone when `up` made it and it is empty
		if ! grep -qxF /run/netns "$STATE/created.before" && [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then
			umount /run/netns 2>/dev/null || true
			rmdir /run/netns 2>/dev/null || true
		fi
		if ! grep -q kubepods "$STATE/created.before"; then
			# pod cgroups go leaf first, with rmdir; a cgroup stays busy for a moment after
			# its last process died
			for _ in $(seq 1 20); do
				[[ -n $(pod_cgroups) ]] || break
				for d in $(pod_cgroups); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
				sleep 1
			done
			if [[ -n $(pod_cgroups) ]]; then
				log "warning: pod cgroups left: $(pod_cgroups | tr '\n' ' ')"
			fi
		fi
	fi
	if [[ -f $STATE/sysctl.saved ]]; then
		while IFS= read -r kv; do
			[[ $(sysctl -n "${kv%%=*}") == "${kv#*=}" ]] || sysctl -qw "$kv"
		done <"$STATE/sysctl.saved"
	fi
	# the components' logs stay for a post-mortem, until the next `down`
	if [[ -d $LOGS ]]; then
		rm -rf "$CACHE/last-logs" && mkdir -p "$CACHE" && mv "$LOGS" "$CACHE/last-logs"
	fi
	rm -rf "$STATE" "$RUN"
	log "logs of this run: $CACHE/last-logs"
	log "cluster down: processes stopped, mounts, namespaces, routes and sysctls restored"
}

case ${1:-} in
up) up ;;
down) down ;;
volumes) volumes ;;
*) die "usage: cluster.sh up | down | volumes" ;;
esac
