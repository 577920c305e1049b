#!/usr/bin/env bash
# Builds the pinned programs the project runs (deploy/versions.env) into .tools/bin with
# `go install`: nats-server, grpcurl, ghz. A program already there at its pinned version is
# kept; Go's module and build caches make a reinstall after a fresh clone take seconds.
#
#   deploy/install-tools.sh              every tool
#   deploy/install-tools.sh nats-server  only the ones named
set -euo pipefail

ROOT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
BIN=$ROOT_DIR/.tools/bin
# shellcheck source=versions.env
source "$ROOT_DIR/deploy/versions.env"

module_of() {
	case $1 in
	nats-server) echo "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" ;;
	grpcurl) echo "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" ;;
	ghz) echo "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" ;;
	*)
		echo "install-tools: unknown tool '$1' (known: nats-server grpcurl ghz)" >&2
		exit 2
		;;
	esac
}

tools=("$@")
((${#tools[@]})) || tools=(nats-server grpcurl ghz)
mkdir -p "$BIN"
for tool in "${tools[@]}"; do
	module=$(module_of "$tool")
	marker=$BIN/.$tool@${module##*@}
	[[ -x $BIN/$tool && -f $marker ]] && continue
	command -v go >/dev/null 2>&1 || {
		echo "install-tools: go is needed to build $tool ${module##*@} (Debian: apt-get install golang-go)" >&2
		exit 1
	}
	echo "installing $tool ${module##*@} (go install $module)"
	rm -f "$BIN/.$tool@"*
	GOBIN=$BIN CGO_ENABLED=0 go install "$module"
	touch "$marker"
done
