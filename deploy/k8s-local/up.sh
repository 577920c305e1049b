#!/usr/bin/env bash
# make k8s-up: build what is missing (cached), start the cluster, build and load the
# images, deploy the mesh. Idempotent: a running cluster is kept and redeployed.
set -euo pipefail
here=$(dirname -- "${BASH_SOURCE[0]}")
source "$here/lib.sh"
need_root
t0=$SECONDS
mkdir -p "$LOGS"
# the Go builds and the image builds at once: the first waits mostly for CPU, the second
# mostly for the package registries
bash "$here/build.sh" &
build=$!
images=0
bash "$here/images.sh" build || images=$?
wait "$build" || die "build.sh failed"
((images == 0)) || exit "$images"
bash "$here/cluster.sh" up
bash "$here/deploy.sh"
log "up in $((SECONDS - t0))s. kubectl: $BIN/kubectl --kubeconfig $KUBECONFIG_ADMIN -n tickmesh get pods"
log "gateway: http://$(kctl -n tickmesh get svc gateway -o jsonpath='{.spec.clusterIP}'):8080 (routed to the cluster's namespace)"
