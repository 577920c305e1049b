#!/usr/bin/env bash
# make k8s-up: build what is missing (cached), start the cluster, build and load the
# images, deploy the mesh. Idempotent: a running cluster is kept and redeployed.
set -euo pipefail
here=$(dirname -- "${BASH_SOURCE[0]}")
source "$here/lib.sh"
need_root
t0=$SECONDS
mkdir -p "$LOGS"
bash "$here/build.sh"
bash "$here/images.sh" build
bash "$here/cluster.sh" up
bash "$here/deploy.sh"
log "up in $((SECONDS - t0))s. kubectl: $BIN/kubectl --kubeconfig $KUBECONFIG_ADMIN -n tickmesh get pods"
log "gateway: http://$(kctl -n tickmesh get svc gateway -o jsonpath='{.spec.clusterIP}'):8080 (routed to the cluster's namespace)"
