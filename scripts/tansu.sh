#!/usr/bin/env bash
# Tansu 0.6.0, the second Kafka-protocol broker of the end-to-end suite.
#   scripts/tansu.sh install   build and install it once per machine (~20 minutes on 2 cores)
#   scripts/tansu.sh start     start it on 127.0.0.1:${TANSU_PORT:-9093} with SQLite storage; prints its pid
#   scripts/tansu.sh stop      stop the one started by `start`
#   scripts/tansu.sh restart   stop it, wait ${KAFKA_DOWN_SECONDS:-3} s, start it again on the same data
#   scripts/tansu.sh test      start it, run the end-to-end and fault suites against it, stop it
#   scripts/tansu.sh faults    start it, run the fault suite on FAULT_RECORDS (default 100,000) records, stop it
# Only the sqlite:// storage engine is used: the memory:// engine loses messages.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${TANSU_PORT:-9093}
state=${TANSU_STATE:-$root/target/tansu}
pidfile=$state/tansu.pid

install() {
  if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q '0\.6\.0'; then
    echo "tansu 0.6.0 is installed: $(command -v tansu)"
    return
  fi
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
}

start() {
  mkdir -p "$state"
  rm -f "$state/tansu.db"* "$state/tansu.log"
  launch
}

launch() {
  command -v tansu >/dev/null || { echo "tansu is not installed: scripts/tansu.sh install" >&2; exit 1; }
  mkdir -p "$state"
  # Tansu reads a sqlite:// URL's path relative to its working directory.
  (cd "$state" && exec tansu broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://tansu.db" \
    >>"$state/tansu.log" 2>&1) &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "tansu listening on 127.0.0.1:$port (pid $(cat "$pidfile"), log $state/tansu.log)"
      return
    fi
    sleep 0.2
  done
  echo "tansu did not start; its log:" >&2
  cat "$state/tansu.log" >&2
  stop
  exit 1
}

stop() {
  if [[ -f $pidfile ]]; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$pidfile"
  fi
}

restart() {
  stop
  sleep "${KAFKA_DOWN_SECONDS:-3}"
  launch
}

run_tests() {
  start
  trap stop EXIT
  echo "tansu tier: end-to-end and fault suites against Tansu 0.6.0 at 127.0.0.1:$port"
  (cd "$root" && KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port cargo test --workspace --test e2e)
  # The fault suite also stops and starts the broker (on the same SQLite data) halfway through.
  (cd "$root" && KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port KAFKA_RESTART_COMMAND="$root/scripts/tansu.sh restart" \
    cargo test --workspace --test faults -- --nocapture)
}

run_faults() {
  start
  trap stop EXIT
  (cd "$root" && FAULT_RECORDS=${FAULT_RECORDS:-100000} KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port \
    KAFKA_RESTART_COMMAND="$root/scripts/tansu.sh restart" cargo test --workspace --test faults -- --nocapture)
}

case ${1:-} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  test) run_tests ;;
  faults) run_faults ;;
  *) echo "usage: $0 install|start|stop|restart|test|faults" >&2; exit 2 ;;
esac
