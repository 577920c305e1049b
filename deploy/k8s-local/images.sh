#!/usr/bin/env bash
# The images the local cluster runs, built without any image registry:
#   build   start a private dockerd (own socket and data root, no bridge, no iptables),
#           make the Debian base with debootstrap (once), and build on it: the Node base,
#           the project image (deploy/Dockerfile), NATS, Redis, MariaDB, ghz and pause
#   build-previous   the last release's project image (deploy/versions.env), once
#   load    copy them into the cluster's containerd (namespace k8s.io)
#   stop    stop the private dockerd (its data root stays in the cache for the next build)
# Image builds reach the package registries through the host network (npm ci, apt-get).
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

IMAGES_DIR=$ROOT/deploy/k8s-local/images
NODE_BASE=tickmesh.local/node:20-bookworm-slim
NATS_TAG=${NATS_SERVER_VERSION#v}
GHZ_TAG=${GHZ_VERSION#v}
# What the local overlay (k8s/overlays/local) and containerd's config name.
PROJECT_IMAGE=${TICKMESH_IMAGE:-tickmesh:local}
LOCAL_IMAGES=(
	"$PROJECT_IMAGE"
	"tickmesh.local/nats:$NATS_TAG"
	tickmesh.local/redis:7
	tickmesh.local/mariadb:10.11
	"tickmesh.local/ghz:$GHZ_TAG"
	tickmesh.local/pause:1
)

start_dockerd() {
	if [[ -S $DOCKER_SOCK ]] && dockerc version >/dev/null 2>&1; then return; fi
	command -v dockerd >/dev/null || die "dockerd not found: apt-get install docker.io"
	mkdir -p "$RUN" "$DOCKER_ROOT" "$LOGS"
	log "starting dockerd on $DOCKER_SOCK (data root $DOCKER_ROOT)"
	# Its own socket, data root and exec root; no bridge and no iptables rules: builds use
	# the host network, and the machine's firewall is left alone.
	setsid dockerd --host "unix://$DOCKER_SOCK" --data-root "$DOCKER_ROOT" \
		--exec-root "$RUN/docker-exec" --pidfile "$RUN/docker.pid" \
		--bridge none --iptables=false --ip-masq=false --ip-forward=false \
		>"$LOGS/dockerd.log" 2>&1 </dev/null &
	for _ in $(seq 1 120); do
		dockerc version >/dev/null 2>&1 && return
		sleep 0.5
	done
	tail -n 20 "$LOGS/dockerd.log" >&2
	die "dockerd did not start (log: $LOGS/dockerd.log)"
}

have_image() { dockerc image inspect "$1" >/dev/null 2>&1; }

build_context() { # image-dir files... -> a temporary context with the Dockerfile and the files
	local ctx
	ctx=$(mktemp -d /tmp/tickmesh-image.XXXXXX)
	cp -r "$IMAGES_DIR/$1/." "$ctx/"
	shift
	for f in "$@"; do cp -a "$f" "$ctx/"; done
	printf '%s\n' "$ctx"
}

build_one() { # tag image-dir files...
	local tag=$1 ctx
	shift
	have_image "$tag" && return
	log "building $tag"
	ctx=$(build_context "$@")
	dockerc build --network host -q -t "$tag" "$ctx" >/dev/null || {
		rm -rf "$ctx"
		die "building $tag failed"
	}
	rm -rf "$ctx"
}

build() {
	need_root
	start_dockerd
	if ! have_image tickmesh.local/debian:bookworm; then
		command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
		local rootfs=$CACHE/rootfs-$DEBIAN_SUITE
		log "debootstrap --variant=minbase $DEBIAN_SUITE (once)"
		rm -rf "$rootfs"
		debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" http://deb.debian.org/debian >"$LOGS/debootstrap.log" 2>&1 ||
			die "debootstrap failed (log: $LOGS/debootstrap.log)"
		rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
		tar -C "$rootfs" -c . | dockerc import - tickmesh.local/debian:bookworm >/dev/null
		rm -rf "$rootfs"
	fi
	[[ -x $ROOT/.tools/bin/nats-server && -x $ROOT/.tools/bin/ghz ]] || die "run make tools first (nats-server, ghz)"
	local node npm
	node=$(command -v node) || die "node not found"
	npm=$(readlink -f "$(dirname "$(readlink -f "$(command -v npm)")")/..")
	[[ $(node --version) == v20.* ]] || die "the machine's node is $(node --version); the image needs Node 20"
	if [[ ! -x $BIN/pause ]]; then # here too, so this script need not wait for build.sh
		mkdir -p "$BIN"
		(cd "$ROOT/deploy/k8s-local/pause" && GOFLAGS= GO111MODULE=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/pause" main.go)
	fi
	build_one "$NODE_BASE" node "$node" "$npm" /etc/ssl/certs/ca-certificates.crt
	build_one "tickmesh.local/nats:$NATS_TAG" nats "$ROOT/.tools/bin/nats-server"
	build_one tickmesh.local/redis:7 redis
	build_one tickmesh.local/mariadb:10.11 mariadb
	build_one "tickmesh.local/ghz:$GHZ_TAG" ghz "$ROOT/.tools/bin/ghz"
	build_one tickmesh.local/pause:1 pause "$BIN/pause"
	# The project image is rebuilt every time (the builder's cache makes an unchanged tree fast).
	log "building $PROJECT_IMAGE from deploy/Dockerfile"
	local t0=$SECONDS
	dockerc build --network host -q -f "$ROOT/deploy/Dockerfile" --build-arg "NODE_IMAGE=$NODE_BASE" \
		-t "$PROJECT_IMAGE" "${TICKMESH_IMAGE_CONTEXT:-$ROOT}" >"$LOGS/image-build.log" 2>&1 || {
		tail -n 30 "$LOGS/image-build.log" >&2
		die "building $PROJECT_IMAGE failed (log: $LOGS/image-build.log)"
	}
	log "built $PROJECT_IMAGE in $((SECONDS - t0))s"
}

# The last release's image (tickmesh:<release>), from its commit, for the rolling upgrade
# of make test-k8s-full.
build_previous() {
	need_root
	start_dockerd
	local tag=tickmesh:$PREVIOUS_RELEASE ctx
	have_image "$tag" && return
	git -C "$ROOT" cat-file -e "$PREVIOUS_RELEASE_COMMIT^{commit}" 2>/dev/null ||
		die "commit $PREVIOUS_RELEASE_COMMIT ($PREVIOUS_RELEASE) is not in this clone: fetch the full history"
	log "building $tag from $PREVIOUS_RELEASE_COMMIT"
	ctx=$(mktemp -d /tmp/tickmesh-release.XXXXXX)
	git -C "$ROOT" archive "$PREVIOUS_RELEASE_COMMIT" | tar -x -C "$ctx"
	# that release's Dockerfile still had a syntax directive, which fetches a frontend image
	sed -i '/^# syntax=/d' "$ctx/deploy/Dockerfile"
	dockerc build --network host -q -f "$ctx/deploy/Dockerfile" --build-arg "NODE_IMAGE=$NODE_BASE" \
		-t "$tag" "$ctx" >"$LOGS/image-build-previous.log" 2>&1 || {
		tail -n 30 "$LOGS/image-build-previous.log" >&2
		rm -rf "$ctx"
		die "building $tag failed (log: $LOGS/image-build-previous.log)"
	}
	rm -rf "$ctx"
}

load() { # the images given, or every image the local overlay runs
	need_root
	start_dockerd
	local images=("$@")
	((${#images[@]})) || images=("${LOCAL_IMAGES[@]}")
	log "loading ${#images[@]} images into containerd"
	dockerc save "${images[@]}" | ctr --address "$CONTAINERD_SOCK" -n k8s.io images import - >/dev/null
}

stop() {
	[[ -f $RUN/docker.pid ]] || return 0
	local pid
	pid=$(cat "$RUN/docker.pid")
	if kill -0 "$pid" 2>/dev/null; then
		log "stopping dockerd ($pid)"
		kill "$pid"
		for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	fi
	rm -f "$RUN/docker.pid"
	# dockerd leaves its exec root mounted when it dies hard
	awk -v d="$RUN/docker-exec" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m" || true; done
	rm -rf "$RUN/docker-exec" "$DOCKER_SOCK"
}

case ${1:-} in
build) build ;;
build-previous) build_previous ;;
load)
	shift
	load "$@"
	;;
stop) stop ;;
*) die "usage: images.sh build | build-previous | load [images...] | stop" ;;
esac
