#!/usr/bin/env bash
# Lints the deployment template offline: cfn-lint, then `sam validate --lint`. Both must be clean.
# Creates the tooling virtualenv .venv-infra from infra/requirements.txt first (once per change of that file).
#   infra/lint.sh            (from anywhere; `make test` runs it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/venv.sh .venv-infra infra/requirements.txt
# Offline: a region for the linters' resource specs, and no telemetry.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export SAM_CLI_TELEMETRY=0
cd infra
echo "cfn-lint template.yaml"
../.venv-infra/bin/cfn-lint template.yaml
echo "sam validate --lint"
../.venv-infra/bin/sam validate --lint --template-file template.yaml --config-file samconfig.toml
