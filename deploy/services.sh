#!/usr/bin/env bash
# Starts, stops and reports the tickmesh services for `make up` / `make down`
# as background processes from dist/, with pid files in .run/pids and logs in
# .run/logs. Only services whose entry point exists are started. `down` stops
# only processes this script started (pid file + command line check).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/.run"
PIDS="$RUN/pids"
LOGS="$RUN/logs"
mkdir -p "$PIDS" "$LOGS"

# name | entry point (under dist/) | readiness URL | extra environment
SERVICES=(
  "ticker|services/ticker/src/main.js|http://127.0.0.1:9101/readyz|GRPC_PORT=50051 METRICS_PORT=9101 PRICE_CACHE_ADDRESS=127.0.0.1:50052"
  "simulator|services/ticker/src/simulator-main.js|http://127.0.0.1:9105/readyz|METRICS_PORT=9105 PRICE_CACHE_ADDRESS=127.0.0.1:50052"
  "price-cache|services/price-cache/src/main.js|http://127.0.0.1:9102/readyz|GRPC_PORT=50052 METRICS_PORT=9102"
  "customers|services/customers/src/main.js|http://127.0.0.1:9103/readyz|GRPC_PORT=50053 METRICS_PORT=9103"
  "gateway|services/gateway/src/main.js|http://127.0.0.1:8080/readyz|HTTP_PORT=8080 HTTP_HOST=127.0.0.1"
)
MIGRATE="services/customers/src/migrate-main.js"

# Local defaults: loopback only, the infrastructure from deploy/local-infra.sh.
export GRPC_HOST="${GRPC_HOST:-127.0.0.1}"
export METRICS_HOST="${METRICS_HOST:-127.0.0.1}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export MYSQL_HOST="${MYSQL_HOST:-127.0.0.1}" MYSQL_PORT="${MYSQL_PORT:-3306}"
export MYSQL_USER="${MYSQL_USER:-tickmesh}" MYSQL_PASSWORD="${MYSQL_PASSWORD:-tickmesh}" MYSQL_DATABASE="${MYSQL_DATABASE:-tickmesh}"
export PRICE_SERVICE_TARGET="${PRICE_SERVICE_TARGET:-127.0.0.1:50052}"
export CUSTOMER_SERVICE_TARGET="${CUSTOMER_SERVICE_TARGET:-127.0.0.1:50053}"
export AUTH_MODE="${AUTH_MODE:-none}"

log() { printf '%s\n' "$*"; }

# True when the pid file names a live process that is one of ours.
pid_alive() {
  local pidfile="$PIDS/$1.pid" pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ -d /proc/$pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dist/services"
}

start_one() {
  local name=$1 entry=$2 env=$3
  if pid_alive "$name"; then
    log "  $name: already running (pid $(<"$PIDS/$name.pid"))"
    return
  fi
  # shellcheck disable=SC2086
  (cd "$ROOT" && exec env $env nohup node --enable-source-maps "dist/$entry" >>"$LOGS/$name.log" 2>&1 </dev/null) &
  echo $! >"$PIDS/$name.pid"
  log "  $name: started (pid $!, log .run/logs/$name.log)"
}

wait_ready() {
  local name=$1 url=$2 deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
  until curl -fsS -m 2 "$url" >/dev/null 2>&1; do
    if ! pid_alive "$name"; then
      log "  $name: exited while starting. Last log lines:"; tail -n 20 "$LOGS/$name.log" >&2; return 1
    fi
    if ((SECONDS > deadline)); then
      log "  $name: not ready after ${READY_TIMEOUT:-60}s ($url). Last log lines:"; tail -n 20 "$LOGS/$name.log" >&2; return 1
    fi
    sleep 0.5
  done
  log "  $name: ready"
}

up() {
  [[ -d "$ROOT/dist" ]] || { log "dist/ is missing: run 'make build' first"; exit 1; }
  if [[ -f "$ROOT/dist/$MIGRATE" ]]; then
    log "migrating the customers database"
    (cd "$ROOT" && node "dist/$MIGRATE" latest >>"$LOGS/migrate.log" 2>&1) || {
      log "migration failed:"; tail -n 20 "$LOGS/migrate.log" >&2; exit 1; }
  fi
  log "starting services"
  local started=()
  for row in "${SERVICES[@]}"; do
    IFS='|' read -r name entry url env <<<"$row"
    [[ -f "$ROOT/dist/$entry" ]] || { log "  $name: not built yet, skipped"; continue; }
    start_one "$name" "$entry" "$env"
    wait_ready "$name" "$url"
    started+=("$name")
  done
  print_urls "${started[@]}"
}

print_urls() {
  cat <<EOT

tickmesh is up ($(IFS=,; echo "$*")).
  live page        http://127.0.0.1:8080/
  WebSocket        ws://127.0.0.1:8080/ws
  ingest gRPC      127.0.0.1:50051   metrics http://127.0.0.1:9101/metrics
  price gRPC       127.0.0.1:50052   metrics http://127.0.0.1:9102/metrics
  customers gRPC   127.0.0.1:50053   metrics http://127.0.0.1:9103/metrics
  simulator        metrics http://127.0.0.1:9105/metrics
  NATS monitoring  http://127.0.0.1:8222/jsz
  logs             .run/logs/*.log   (make logs)

Try:
  .tools/bin/grpcurl -plaintext 127.0.0.1:50052 list
  .tools/bin/grpcurl -plaintext -d '{"symbol":"THYAO"}' 127.0.0.1:50052 tickmesh.price.v1.PriceService/GetQuote
  .tools/bin/grpcurl -plaintext -d '{"symbols":["THYAO","GARAN"]}' 127.0.0.1:50052 tickmesh.price.v1.PriceService/StreamQuotes
  npm run watch -- THYAO GARAN
Stop with: make down
EOT
}

stop_one() {
  local name=$1 pidfile="$PIDS/$1.pid" pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if pid_alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; log "  $name: killed (did not stop in 10s)"; else log "  $name: stopped"; fi
  fi
  rm -f "$pidfile"
}

down() {
  log "stopping services"
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    IFS='|' read -r name _ <<<"${SERVICES[$i]}"
    stop_one "$name"
  done
}

status() {
  for row in "${SERVICES[@]}"; do
    IFS='|' read -r name _ url _ <<<"$row"
    if pid_alive "$name"; then
      if curl -fsS -m 2 "$url" >/dev/null 2>&1; then s=ready; else s="not ready"; fi
      printf '  %-12s running (pid %s), %s\n' "$name" "$(<"$PIDS/$name.pid")" "$s"
    else
      printf '  %-12s stopped\n' "$name"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
