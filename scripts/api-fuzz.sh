#!/usr/bin/env bash
# API fuzzing: schemathesis against the query API's own OpenAPI document, on a local stack with data in it.
# Fails on any 5xx and on any answer that does not match the document.
#   scripts/api-fuzz.sh            (API_FUZZ_SECONDS, default 120, bounds the run)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/venv.sh .venv localstack/requirements.txt
scripts/venv.sh .venv-apifuzz tests/api-fuzz/requirements.txt
cargo build -q --bin notifications
kafka=127.0.0.1:19092
api=127.0.0.1:13000
log=$(mktemp)
target/debug/notifications dev --kafka-listen "$kafka" --api-listen "$api" --moto-port 15000 >"$log" 2>&1 &
stack=$!
trap 'kill -INT $stack 2>/dev/null; wait $stack 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://$api/health" >/dev/null && break
  sleep 0.5
done
curl -sf "http://$api/health" >/dev/null || { cat "$log"; echo "the local stack did not start" >&2; exit 1; }
target/debug/notifications produce --bootstrap-servers "$kafka" --count 400 --seed 5
sleep 3
echo "fuzzing http://$api for ${API_FUZZ_SECONDS:-120}s"
.venv-apifuzz/bin/schemathesis run "http://$api/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-time "${API_FUZZ_SECONDS:-120}" --workers 2 --suppress-health-check all
