#!/usr/bin/env bash
# Installs dynalite (DynamoDB on LevelDB, which keeps its data across a restart) into
# localstack/dynalite/node_modules at the version localstack/dynalite/package-lock.json pins, once per lock change.
# The fault suite kills it and starts it again; `make test` runs the integration suites against it as well as moto.
set -euo pipefail
cd "$(dirname "$0")/../localstack/dynalite"

wanted=$(node -p "require('./package.json').dependencies.dynalite")
have=$(node -p "try { require('./node_modules/dynalite/package.json').version } catch (_) { '' }")
if [ "$wanted" != "$have" ]; then
  echo "dynalite: installing dynalite $wanted into localstack/dynalite/node_modules"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "dynalite: $(node -p "require('./node_modules/dynalite/package.json').version") on node $(node --version)"
