#!/usr/bin/env bash
# Deploys the mesh the way skaffold's kubectl deployer does: `kubectl apply --server-side -k`
# of the overlay (k8s/overlays/local), after removing the migration Job of an earlier deploy
# (a Job's pod template is immutable), then waits for every workload.
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

OVERLAY=${1:-$ROOT/k8s/overlays/local}
[[ -f $KUBECONFIG_ADMIN ]] || die "no cluster: run make k8s-up"

kctl -n tickmesh delete job customers-migrate --ignore-not-found --wait=true >/dev/null 2>&1 || true
log "kubectl apply --server-side -k ${OVERLAY#"$ROOT"/}"
kctl apply --server-side --force-conflicts -k "$OVERLAY" >"$LOGS/apply.log" || {
	cat "$LOGS/apply.log" >&2
	die "kubectl apply failed"
}
# a changed image under the same tag (tickmesh:local) does not change the pod templates
if [[ ${TICKMESH_ROLL:-} == 1 ]]; then
	kctl -n tickmesh rollout restart deployment -l app.kubernetes.io/part-of=tickmesh >/dev/null
fi
log "waiting for the workloads (first start: MariaDB initialises, NATS creates its stream)"
kctl -n tickmesh wait --for=condition=complete job/customers-migrate --timeout=600s >/dev/null
for kind in statefulset deployment; do
	for name in $(kctl -n tickmesh get "$kind" -o name); do
		kctl -n tickmesh rollout status "$name" --timeout=600s >/dev/null
	done
done
log "deployed: $(kctl -n tickmesh get pods --no-headers | awk '{print $1" "$2" "$3}' | tr '\n' ';')"
