#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted bash -c bodies and SQL backticks are meant literally
# Local infrastructure for tickmesh: NATS (JetStream), Redis and MariaDB on loopback.
#
#   deploy/local-infra.sh up       reuse what already answers, start what is missing
#   deploy/local-infra.sh down     stop only what this script started (by pid)
#   deploy/local-infra.sh status   managed (pid N) | external | down, per component
#   deploy/local-infra.sh env      export lines for the connection settings
#   deploy/local-infra.sh reset    down, then delete the local data (and these logs) under .run/
#
# Settings (environment): NATS_URL, NATS_MONITOR_PORT, REDIS_URL, MYSQL_HOST, MYSQL_PORT,
# MYSQL_USER, MYSQL_PASSWORD, MYSQL_DATABASE, TICKMESH_RUN_DIR, TICKMESH_INFRA_TIMEOUT.
# See docs/local-development.md.
set -euo pipefail

ROOT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
RUN_DIR=${TICKMESH_RUN_DIR:-$ROOT_DIR/.run}
PID_DIR=$RUN_DIR/pids
LOG_DIR=$RUN_DIR/logs
TIMEOUT=${TICKMESH_INFRA_TIMEOUT:-60}

NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
NATS_MONITOR_PORT=${NATS_MONITOR_PORT:-8222}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${MYSQL_PORT:-3306}
MYSQL_USER=${MYSQL_USER:-tickmesh}
MYSQL_PASSWORD=${MYSQL_PASSWORD:-tickmesh}
MYSQL_DATABASE=${MYSQL_DATABASE:-tickmesh}

# The pinned nats-server (deploy/versions.env), built by deploy/install-tools.sh.
NATS_SERVER_BIN=$ROOT_DIR/.tools/bin/nats-server

# mariadbd lives in /usr/sbin, which is not on every user's PATH.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
export PATH

# ---------------------------------------------------------------------------- output

if [[ -t 1 ]]; then BOLD=$'\e[1m' RED=$'\e[31m' RESET=$'\e[0m'; else BOLD='' RED='' RESET=''; fi
say() { printf '%s\n' "$*"; }
warn() { printf '%swarning:%s %s\n' "$RED" "$RESET" "$*" >&2; }
die() {
	printf '%serror:%s %s\n' "$RED" "$RESET" "$*" >&2
	exit 1
}
have() {
	local p
	p=$(command -v "$1" 2>/dev/null) && [[ -x $p ]]
}
now_ms() {
	local t=${EPOCHREALTIME//[!0-9]/}
	echo $((10#$t / 1000))
}
since() { # since START_MS -> "1.23s"
	local d=$(($(now_ms) - $1))
	printf '%d.%02ds' $((d / 1000)) $((d % 1000 / 10))
}

# --------------------------------------------------------------------- address parsing

# url_hostport URL DEFAULT_PORT -> "host port" (first server of a list; credentials dropped)
url_hostport() {
	local rest=${1%%,*} host port
	rest=${rest#*://}
	rest=${rest##*@}
	rest=${rest%%/*}
	rest=${rest%%\?*}
	if [[ $rest == \[* ]]; then # [v6]:port
		host=${rest%%]*}
		host=${host#[}
		port=${rest##*]}
		port=${port#:}
	elif [[ $rest == *:* ]]; then
		host=${rest%%:*}
		port=${rest##*:}
	else
		host=$rest
		port=''
	fi
	printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$2}"
}

read -r NATS_HOST NATS_PORT < <(url_hostport "$NATS_URL" 4222)
read -r REDIS_HOST REDIS_PORT < <(url_hostport "$REDIS_URL" 6379)

is_loopback() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]; }
bind_addr() { if [[ $1 == localhost ]]; then echo 127.0.0.1; else echo "$1"; fi; }

# --------------------------------------------------------------------------- probes

tcp_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# The first line a NATS server sends: INFO {...}
nats_info() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
		IFS= read -r -t 2 line <&3 || exit 1
		printf "%s\n" "${line%$'\''\r'\''}"' _ "$1" "$2" 2>/dev/null
}
nats_answers() { [[ $(nats_info "$1" "$2" || true) == INFO* ]]; }
nats_js_ready() {
	local info
	info=$(nats_info "$1" "$2" || true)
	[[ $info == INFO* && $info == *'"jetstream":true'* ]] || return 1
	# When the monitoring port is ours to check, also ask /healthz (JetStream fully up).
	if [[ -n ${3:-} ]] && have curl; then
		curl -fsS -m 2 "http://$(bind_addr "$1"):$3/healthz?js-enabled-only=true" >/dev/null 2>&1 || return 1
	fi
}

# Redis answers PING with +PONG (or -NOAUTH when it wants a password: still a Redis).
redis_reply() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "PING\r\n" >&3
		IFS= read -r -t 2 line <&3 || exit 1
		printf "%s\n" "${line%$'\''\r'\''}"' _ "$1" "$2" 2>/dev/null
}
redis_answers() {
	local r
	r=$(redis_reply "$1" "$2" || true)
	[[ $r == +PONG || $r == -NOAUTH* || $r == -LOADING* ]]
}
redis_ready() { [[ $(redis_reply "$1" "$2" || true) == +PONG ]]; }

# A MySQL/MariaDB server speaks first: 3-byte length, sequence 0, then protocol 10 (0x0a)
# or an error packet (0xff, e.g. "host blocked"): either way it is a MySQL server.
mysql_answers() {
	local bytes
	bytes=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
		head -c 5 <&3 | od -An -tx1' _ "$1" "$2" 2>/dev/null || true)
	read -r -a bytes <<<"$bytes"
	[[ ${#bytes[@]} -eq 5 && ${bytes[3]} == 00 && (${bytes[4]} == 0a || ${bytes[4]} == ff) ]]
}

# --------------------------------------------------------------------------- pids

pid_file() { echo "$PID_DIR/$1.pid"; }

# pid_alive_as PID COMM: the pid exists, is not a zombie and runs the expected binary.
pid_alive_as() {
	local out stat comm
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	out=$(ps -o stat=,comm= -p "$1" 2>/dev/null) || return 1
	read -r stat comm <<<"$out"
	[[ $stat != Z* && $comm == "$2" ]]
}

# pid_starting PID -> true while PID is a live shell or setsid that has not exec'd its server yet.
pid_starting() {
	local out stat comm
	out=$(ps -o stat=,comm= -p "$1" 2>/dev/null) || return 1
	read -r stat comm <<<"$out"
	[[ $stat != Z* && ($comm == bash || $comm == setsid || $comm == nohup) ]]
}

# managed_pid NAME COMM -> prints the pid when our pid file points at a live COMM process.
managed_pid() {
	local f pid
	f=$(pid_file "$1")
	[[ -r $f ]] || return 1
	pid=$(<"$f")
	pid_alive_as "$pid" "$2" || return 1
	echo "$pid"
}

log_tail() {
	local f=$LOG_DIR/$1.log
	[[ -r $f ]] || return 0
	say "---- last lines of $f ----" >&2
	tail -n "${2:-25}" "$f" >&2
	say "----" >&2
}

# wait_ready NAME COMM PID PROBE... : poll PROBE until it succeeds, the process dies or time runs out.
wait_ready() {
	local name=$1 comm=$2 pid=$3
	shift 3
	local deadline=$((SECONDS + TIMEOUT))
	while ((SECONDS < deadline)); do
		# Just after launch the process may still be the shell or setsid on its way to exec
		# COMM (a loaded machine stretches that moment): only a gone or zombie process has died.
		if ! pid_alive_as "$pid" "$comm" && ! pid_starting "$pid"; then
			rm -f "$(pid_file "$name")"
			log_tail "$name"
			die "$name exited during start-up (see $LOG_DIR/$name.log)"
		fi
		if "$@"; then return 0; fi
		sleep 0.2
	done
	log_tail "$name"
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$(pid_file "$name")"
	die "$name was not ready after ${TIMEOUT}s (stopped it; log: $LOG_DIR/$name.log)"
}

# launch NAME COMM CMD...: start CMD detached (own session, no stdin), log to .run/logs.
launch() {
	local name=$1 comm=$2
	shift 2
	local log=$LOG_DIR/$name.log
	printf '\n==== %s starting %s\n' "$(date '+%F %T')" "$name" >>"$log"
	# 9>&-: the server must not inherit (and hold) the lock on .run/.lock
	if have setsid; then
		setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
	else
		nohup "$@" </dev/null >>"$log" 2>&1 9>&- &
	fi
	LAUNCHED_PID=$!
	echo "$LAUNCHED_PID" >"$(pid_file "$name")"
}

# ----------------------------------------------------------------------- installing

missing_packages() { # components... -> apt packages whose binaries are missing
	local c pkgs=()
	for c in "$@"; do
		case $c in
		redis) have redis-server || pkgs+=(redis-server) ;;
		mysql)
			{ have mariadbd && have mariadb-install-db; } || pkgs+=(mariadb-server)
			have mariadb || pkgs+=(mariadb-client)
			;;
		esac
	done
	echo "${pkgs[*]}"
}

install_packages() {
	local pkgs=("$@") log=$LOG_DIR/apt.log
	((${#pkgs[@]})) || return 0
	if [[ $EUID -ne 0 ]] || ! have apt-get; then
		say "${BOLD}missing:${RESET} ${pkgs[*]}" >&2
		if have apt-get; then
			die "install them with: sudo apt-get install -y ${pkgs[*]}"
		fi
		die "install them with your package manager (Debian/Ubuntu: apt-get install -y ${pkgs[*]})"
	fi
	say "installing ${pkgs[*]} (apt-get, log: $log)"
	export DEBIAN_FRONTEND=noninteractive
	local p need_update=0
	for p in "${pkgs[@]}"; do
		[[ -n $(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}') ]] || need_update=1
	done
	if ((need_update)); then apt-get update >>"$log" 2>&1 || true; fi
	if ! apt-get install -y "${pkgs[@]}" >>"$log" 2>&1; then
		# Stale package lists give 404s: refresh once and retry.
		apt-get update >>"$log" 2>&1 || true
		if ! apt-get install -y "${pkgs[@]}" >>"$log" 2>&1; then
			tail -n 20 "$log" >&2
			die "apt-get install -y ${pkgs[*]} failed (log: $log)"
		fi
	fi
}

# --------------------------------------------------------------------------- NATS

nats_up() {
	local pid
	if pid=$(managed_pid nats nats-server); then
		say "nats   already running (managed, pid $pid)"
		return
	fi
	if nats_answers "$NATS_HOST" "$NATS_PORT"; then
		if nats_js_ready "$NATS_HOST" "$NATS_PORT"; then
			say "nats   external server at $NATS_HOST:$NATS_PORT (JetStream on), not managed"
		else
			warn "the NATS server at $NATS_HOST:$NATS_PORT does not have JetStream enabled"
		fi
		rm -f "$(pid_file nats)"
		return
	fi
	local bind
	bind=$(bind_addr "$NATS_HOST")
	local dir=$RUN_DIR/nats conf=$RUN_DIR/nats/nats.conf
	mkdir -p "$dir/jetstream"
	cat >"$conf" <<EOF
# generated by deploy/local-infra.sh
server_name: "tickmesh-local"
listen: "$bind:$NATS_PORT"
http: "$bind:$NATS_MONITOR_PORT"
jetstream {
  store_dir: "$dir"
}
EOF
	bash "$ROOT_DIR/deploy/install-tools.sh" nats-server
	launch nats nats-server "$NATS_SERVER_BIN" -c "$conf"
	local pid=$LAUNCHED_PID t0
	t0=$(now_ms)
	wait_ready nats nats-server "$pid" nats_js_ready "$NATS_HOST" "$NATS_PORT" "$NATS_MONITOR_PORT"
	say "nats   started (pid $pid, $(since "$t0"))  nats://$bind:$NATS_PORT  monitoring http://$bind:$NATS_MONITOR_PORT"
}

# --------------------------------------------------------------------------- Redis

redis_up() {
	local pid
	if pid=$(managed_pid redis redis-server); then
		say "redis  already running (managed, pid $pid)"
		return
	fi
	if redis_answers "$REDIS_HOST" "$REDIS_PORT"; then
		say "redis  external server at $REDIS_HOST:$REDIS_PORT, not managed"
		rm -f "$(pid_file redis)"
		return
	fi
	local bind dir=$RUN_DIR/redis
	bind=$(bind_addr "$REDIS_HOST")
	mkdir -p "$dir"
	# A cache by design: no RDB snapshots, no AOF.
	launch redis redis-server redis-server --bind "$bind" --port "$REDIS_PORT" --dir "$dir" \
		--save '' --appendonly no --daemonize no --protected-mode yes --logfile ''
	local pid=$LAUNCHED_PID t0
	t0=$(now_ms)
	wait_ready redis redis-server "$pid" redis_ready "$REDIS_HOST" "$REDIS_PORT"
	say "redis  started (pid $pid, $(since "$t0"))  redis://$bind:$REDIS_PORT"
}

# --------------------------------------------------------------------------- MariaDB

sql_string() { # quote for a SQL string literal
	local s=${1//\\/\\\\}
	printf "'%s'" "${s//\'/\'\'}"
}

mysql_bootstrap_sql() {
	local pw db=$MYSQL_DATABASE u=$MYSQL_USER h
	pw=$(sql_string "$MYSQL_PASSWORD")
	printf 'CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n' "$db"
	for h in localhost 127.0.0.1 %; do
		printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY %s;\n" "$u" "$h" "$pw"
		printf "ALTER USER '%s'@'%s' IDENTIFIED BY %s;\n" "$u" "$h" "$pw"
		printf "GRANT ALL PRIVILEGES ON \`%s\`.* TO '%s'@'%s';\n" "$db" "$u" "$h"
		# scratch databases named <db>_something (e.g. tickmesh_test) for local experiments
		printf "GRANT ALL PRIVILEGES ON \`%s\\\\_%%\`.* TO '%s'@'%s';\n" "$db" "$u" "$h"
	done
	printf 'FLUSH PRIVILEGES;\n'
}

# The data dir must be reachable by the mysql user (mariadbd drops to it when run as root).
# A checkout under /root (mode 700) is not: keep the data outside and link it from .run/.
mysql_data_root() {
	local d=$RUN_DIR/mysql
	if [[ $EUID -eq 0 && ! -L $d ]]; then
		mkdir -p "$d"
		if ! runuser -u mysql -- test -x "$d" 2>/dev/null; then
			local alt
			alt=/var/lib/tickmesh-local/$(printf '%s' "$RUN_DIR" | cksum | cut -d' ' -f1)/mysql
			mkdir -p "$alt"
			rmdir "$d" 2>/dev/null || die "$d is not reachable by the mysql user and not empty"
			ln -s "$alt" "$d"
			say "mysql  note: $RUN_DIR is not reachable by user mysql; data lives in $alt (linked from $d)" >&2
		fi
	fi
	mkdir -p "$d"
	cd -P -- "$d" && pwd -P
}

mysql_up() {
	local pid
	if pid=$(managed_pid mysql mariadbd); then
		say "mysql  already running (managed, pid $pid)"
		return
	fi
	if mysql_answers "$MYSQL_HOST" "$MYSQL_PORT"; then
		say "mysql  external server at $MYSQL_HOST:$MYSQL_PORT, not managed"
		rm -f "$(pid_file mysql)"
		if have mariadb && ! mariadb -h"$MYSQL_HOST" -P"$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" \
			"$MYSQL_DATABASE" -e 'SELECT 1' >/dev/null 2>&1; then
			warn "cannot log in to the external server as $MYSQL_USER into $MYSQL_DATABASE; create them:"
			mysql_bootstrap_sql | sed 's/^/    /' >&2
		fi
		return
	fi
	[[ $MYSQL_USER =~ ^[A-Za-z0-9_]+$ && $MYSQL_DATABASE =~ ^[A-Za-z0-9_]+$ ]] ||
		die "MYSQL_USER and MYSQL_DATABASE must match ^[A-Za-z0-9_]+\$"

	local base data sock bind run_user=()
	base=$(mysql_data_root)
	data=$base/data
	sock=$base/mysqld.sock
	if ((${#sock} > 100)); then # unix socket paths are limited to 107 bytes
		sock=/tmp/tickmesh-mysqld-$(printf '%s' "$base" | cksum | cut -d' ' -f1).sock
	fi
	bind=$(bind_addr "$MYSQL_HOST")
	# Socket authentication: OS user root logs in as MariaDB root; another OS user gets an
	# admin account of its own name (--auth-root-socket-user).
	local admin
	if [[ $EUID -eq 0 ]]; then
		run_user=(--user=mysql)
		admin=root
		chown mysql:mysql "$base"
	else
		admin=$(id -un)
	fi
	# --tmpdir: otherwise mariadbd uses $TMPDIR, which user mysql may not be able to write
	local -a opts=(--datadir="$data" --socket="$sock" --pid-file="$base/mariadbd.pid" --tmpdir="$base"
		--innodb-log-file-size=48M --innodb-buffer-pool-size=128M)

	if [[ ! -d $data/mysql ]]; then
		say "mysql  initialising data directory $data"
		rm -rf "$data"
		local socket_user=()
		[[ $admin == root ]] || socket_user=(--auth-root-socket-user="$admin")
		if ! mariadb-install-db --no-defaults "${run_user[@]}" --auth-root-authentication-method=socket "${socket_user[@]}" \
			--skip-test-db --skip-name-resolve "${opts[@]}" >>"$LOG_DIR/mysql.log" 2>&1; then
			log_tail mysql
			die "mariadb-install-db failed (log: $LOG_DIR/mysql.log)"
		fi
	fi
	[[ $EUID -ne 0 ]] || chown -R mysql:mysql "$base"

	# mariadbd logs to stderr when no --log-error is given; launch() sends that to .run/logs.
	launch mysql mariadbd mariadbd --no-defaults "${run_user[@]}" "${opts[@]}" \
		--bind-address="$bind" --port="$MYSQL_PORT" \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
	local pid=$LAUNCHED_PID t0
	t0=$(now_ms)
	wait_ready mysql mariadbd "$pid" mysql_answers "$MYSQL_HOST" "$MYSQL_PORT"

	# The admin logs in through the unix socket (socket auth matches the OS user).
	if ! mysql_bootstrap_sql | mariadb --no-defaults --socket="$sock" -u"$admin" >>"$LOG_DIR/mysql.log" 2>&1; then
		log_tail mysql 5
		die "could not create database/user as '$admin' through $sock; the server is running (managed);" \
			"if $data was initialised by another OS user, run: $0 reset"
	fi
	say "mysql  started (pid $pid, $(since "$t0"))  $bind:$MYSQL_PORT  db=$MYSQL_DATABASE user=$MYSQL_USER"
}

# ---------------------------------------------------------------------- subcommands

prepare_dirs() {
	mkdir -p "$PID_DIR" "$LOG_DIR"
	if have flock; then
		exec 9>"$RUN_DIR/.lock"
		flock -w 300 9 || die "another local-infra.sh is running (lock $RUN_DIR/.lock)"
	fi
}

# needs_start COMPONENT: not managed by us and nothing answering -> we have to start it
needs_start() {
	case $1 in
	nats) ! managed_pid nats nats-server >/dev/null && ! nats_answers "$NATS_HOST" "$NATS_PORT" ;;
	redis) ! managed_pid redis redis-server >/dev/null && ! redis_answers "$REDIS_HOST" "$REDIS_PORT" ;;
	mysql) ! managed_pid mysql mariadbd >/dev/null && ! mysql_answers "$MYSQL_HOST" "$MYSQL_PORT" ;;
	esac
}

cmd_up() {
	prepare_dirs
	local c to_start=() host port
	for c in nats redis mysql; do
		needs_start "$c" || continue
		case $c in
		nats) host=$NATS_HOST port=$NATS_PORT ;;
		redis) host=$REDIS_HOST port=$REDIS_PORT ;;
		mysql) host=$MYSQL_HOST port=$MYSQL_PORT ;;
		esac
		is_loopback "$host" || die "$c: nothing answers at $host:$port and it is not a loopback address, so it cannot be started here"
		if tcp_open "$host" "$port"; then
			die "$c: port $host:$port is in use by something that does not speak the $c protocol"
		fi
		if [[ $c == nats ]] && tcp_open "$(bind_addr "$host")" "$NATS_MONITOR_PORT"; then
			die "nats: monitoring port $NATS_MONITOR_PORT is in use (set NATS_MONITOR_PORT)"
		fi
		to_start+=("$c")
	done
	local pkgs
	pkgs=$(missing_packages "${to_start[@]}")
	# shellcheck disable=SC2086 # word splitting intended
	[[ -z $pkgs ]] || install_packages $pkgs
	nats_up
	redis_up
	mysql_up
}

stop_one() { # NAME COMM
	local name=$1 comm=$2 f pid i
	f=$(pid_file "$name")
	if [[ ! -e $f ]]; then
		say "$(printf '%-6s' "$name") not started by this script, left alone"
		return
	fi
	pid=$(<"$f")
	if ! pid_alive_as "$pid" "$comm"; then
		rm -f "$f"
		say "$(printf '%-6s' "$name") was not running (stale pid file removed)"
		return
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do # up to 30 s (mariadbd flushes on shutdown)
		pid_alive_as "$pid" "$comm" || break
		sleep 0.1
	done
	if pid_alive_as "$pid" "$comm"; then
		warn "$name (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$f"
	say "$(printf '%-6s' "$name") stopped (pid $pid)"
}

cmd_down() {
	prepare_dirs
	stop_one nats nats-server
	stop_one redis redis-server
	stop_one mysql mariadbd
}

status_one() { # NAME COMM ANSWERS-FN HOST PORT LABEL
	local pid state
	if pid=$(managed_pid "$1" "$2"); then
		state="managed (pid $pid)"
	elif "$3" "$4" "$5"; then
		state=external
	else
		state=down
	fi
	printf '%-6s %-20s %s\n' "$1" "$state" "$6"
}

cmd_status() {
	status_one nats nats-server nats_answers "$NATS_HOST" "$NATS_PORT" "nats://$NATS_HOST:$NATS_PORT"
	status_one redis redis-server redis_answers "$REDIS_HOST" "$REDIS_PORT" "redis://$REDIS_HOST:$REDIS_PORT"
	status_one mysql mariadbd mysql_answers "$MYSQL_HOST" "$MYSQL_PORT" "mysql://$MYSQL_USER@$MYSQL_HOST:$MYSQL_PORT/$MYSQL_DATABASE"
}

cmd_env() {
	local v
	for v in NATS_URL REDIS_URL MYSQL_HOST MYSQL_PORT MYSQL_USER MYSQL_PASSWORD MYSQL_DATABASE; do
		printf 'export %s=%q\n' "$v" "${!v}"
	done
}

cmd_reset() {
	cmd_down
	local target=$RUN_DIR/mysql
	if [[ -L $target ]]; then
		local real
		real=$(readlink -f "$target")
		rm -rf -- "$real"
		rmdir -- "$(dirname -- "$real")" 2>/dev/null || true
	fi
	rm -rf -- "$RUN_DIR/nats" "$RUN_DIR/redis" "$RUN_DIR/mysql"
	rm -f -- "$LOG_DIR/nats.log" "$LOG_DIR/redis.log" "$LOG_DIR/mysql.log" "$LOG_DIR/apt.log"
	say "local data removed ($RUN_DIR)"
}

usage() {
	sed -n '3,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
reset) cmd_reset ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
