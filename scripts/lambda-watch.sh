#!/usr/bin/env bash
# The ingest function behind the Lambda Invoke API, locally: `cargo lambda watch --only-lambda-apis` (cargo-lambda
# from PATH or .venv-infra/bin, which `make infra-lint` creates) serves the Invoke and Runtime APIs without building
# anything, and the already built ingest binary runs against its Runtime API. Nothing is compiled here: build the
# binary first, with the workspace's feature unification, so that it is the one `cargo test --workspace
# --all-targets` builds against (`cargo build --workspace --bin ingest --test lambda_invoke`; `-p ingest`, which is
# what `cargo lambda watch` builds with, resolves other features and rebuilds the whole dependency tree).
#   scripts/lambda-watch.sh start --port PORT --endpoint URL --table TABLE --bucket BUCKET [--env NAME=VALUE]...
#                                 [--binary PATH] [--parent PID]
#       starts the emulator on 127.0.0.1:PORT, waits until it answers, then starts the function (PATH, default
#       ${CARGO_TARGET_DIR:-target}/debug/ingest) with the environment cargo-lambda prints for this mode
#       (AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/.rt/ingest, AWS_LAMBDA_FUNCTION_NAME=ingest,
#       AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE; AWS_LAMBDA_LOG_GROUP_NAME/_STREAM_NAME too)
#       and nothing from the caller's environment but RUST_LOG and RUST_BACKTRACE: TABLE_NAME, PAYLOAD_BUCKET, the
#       DynamoDB/S3 endpoint URL (moto, LocalStack) as AWS_ENDPOINT_URL, dummy credentials, us-east-1, each --env.
#       Prints "EMULATOR_PID FUNCTION_PID" on stdout (each the leader of a process group of its own).
#       The function is `ingest`: http://127.0.0.1:PORT/2015-03-31/functions/ingest/invocations. --parent PID:
#       stop both when PID ends.
#   scripts/lambda-watch.sh stop PID...
#       stops each, with its whole process group (the function's pid first: it ends before the emulator).
#   scripts/lambda-watch.sh which
#       prints the cargo-lambda executable, or fails saying why there is none.
# Both write to target/lambda-watch/PORT.log (LAMBDA_WATCH_LOG to change); the wait for the emulator's port is
# LAMBDA_WATCH_WAIT_SECONDS (default 120).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

which_cargo_lambda() {
  if command -v cargo-lambda >/dev/null; then
    command -v cargo-lambda
  elif [[ -x $root/.venv-infra/bin/cargo-lambda ]]; then
    echo "$root/.venv-infra/bin/cargo-lambda"
  else
    echo "cargo-lambda is not installed: not on PATH, no $root/.venv-infra/bin/cargo-lambda (make infra-lint)" >&2
    return 1
  fi
}

stop() {
  [[ $# -gt 0 ]] || { echo "usage: lambda-watch.sh stop PID..." >&2; exit 2; }
  local pid
  # Each group (the function; cargo-lambda), then wait for their leaders.
  for pid in "$@"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "$@"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [[ $alive == 1 ]] || return 0
    sleep 0.1
  done
  for pid in "$@"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
}

start() {
  local port="" endpoint="" table="" bucket="" parent=""
  local binary=${CARGO_TARGET_DIR:-$root/target}/debug/ingest
  local -a extra=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      --port) port=$2; shift 2 ;;
      --endpoint) endpoint=$2; shift 2 ;;
      --table) table=$2; shift 2 ;;
      --bucket) bucket=$2; shift 2 ;;
      --env) extra+=("$2"); shift 2 ;;
      --binary) binary=$2; shift 2 ;;
      --parent) parent=$2; shift 2 ;;
      *) echo "lambda-watch.sh start: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  [[ -n $port && -n $endpoint && -n $table && -n $bucket ]] ||
    { echo "usage: lambda-watch.sh start --port PORT --endpoint URL --table TABLE --bucket BUCKET" >&2; exit 2; }
  [[ -x $binary ]] ||
    { echo "no ingest binary at $binary: cargo build --workspace --bin ingest --test lambda_invoke" >&2; exit 1; }
  local cargo_lambda
  cargo_lambda=$(which_cargo_lambda)
  local log=${LAMBDA_WATCH_LOG:-$root/target/lambda-watch/$port.log}
  mkdir -p "$(dirname "$log")"
  : >"$log"
  # setsid: a process group of its own, so that `stop` ends it with whatever it started. --only-lambda-apis: the
  # Invoke and Runtime APIs only: no build, no function of its own, and (--ignore-changes) nothing to reload.
  # In the workspace root: it answers only for the workspace's binaries (cargo metadata).
  (
    cd "$root"
    exec setsid "$cargo_lambda" lambda watch --only-lambda-apis --ignore-changes \
      --invoke-address 127.0.0.1 --invoke-port "$port" \
      </dev/null >>"$log" 2>&1
  ) &
  local emulator=$!
  local wait_seconds=${LAMBDA_WATCH_WAIT_SECONDS:-120}
  local tries=$((wait_seconds * 5)) ready=""
  for _ in $(seq 1 "$tries"); do
    if ! kill -0 "$emulator" 2>/dev/null; then
      echo "cargo lambda watch exited; its log ($log):" >&2
      cat "$log" >&2
      exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      ready=1
      break
    fi
    sleep 0.2
  done
  if [[ -z $ready ]]; then
    echo "cargo lambda watch did not answer on port $port within $wait_seconds s; its log ($log):" >&2
    cat "$log" >&2
    stop "$emulator"
    exit 1
  fi
  # The function, as cargo-lambda would start it (the variables it prints in this mode, with the function's name
  # for `_`: the invocations of `ingest` are queued for the runtime at /.rt/ingest), in a clean environment.
  local -a passed=()
  local name
  for name in RUST_LOG RUST_BACKTRACE; do
    if [[ -n ${!name:-} ]]; then passed+=("$name=${!name}"); fi
  done
  (
    cd "$root"
    exec setsid env -i \
      PATH=/usr/local/bin:/usr/bin:/bin TZ=:UTC LANG=C.UTF-8 \
      AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/ingest" \
      AWS_LAMBDA_FUNCTION_NAME=ingest \
      AWS_LAMBDA_FUNCTION_VERSION=1 \
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE=4096 \
      AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/ingest \
      AWS_LAMBDA_LOG_STREAM_NAME="local/$port" \
      AWS_ENDPOINT_URL="$endpoint" \
      AWS_ACCESS_KEY_ID=test \
      AWS_SECRET_ACCESS_KEY=test \
      AWS_REGION=us-east-1 \
      TABLE_NAME="$table" \
      PAYLOAD_BUCKET="$bucket" \
      ${passed[@]+"${passed[@]}"} \
      ${extra[@]+"${extra[@]}"} \
      "$binary" \
      </dev/null >>"$log" 2>&1
  ) &
  local function_pid=$!
  # A function that cannot start (configuration, runtime API) ends at once.
  sleep 0.5
  if ! kill -0 "$function_pid" 2>/dev/null; then
    echo "the function ($binary) exited at start; the log ($log):" >&2
    cat "$log" >&2
    stop "$emulator"
    exit 1
  fi
  if [[ -n $parent ]]; then
    # A watchdog outside both groups: stops them when the parent process ends, however it ends.
    (
      while kill -0 "$parent" 2>/dev/null && kill -0 "$emulator" 2>/dev/null; do sleep 0.5; done
      stop "$function_pid" "$emulator"
    ) </dev/null >/dev/null 2>&1 &
  fi
  echo "cargo lambda watch --only-lambda-apis (pid $emulator) and $binary (pid $function_pid): function ingest" \
    "on http://127.0.0.1:$port (log $log)" >&2
  echo "$emulator $function_pid"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  which) which_cargo_lambda ;;
  *) sed -n '2,24p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
