#!/usr/bin/env bash
# Installs what the console's browser test (tests/tests/console.rs) needs, once per machine or lock change:
# Debian's chromium, and npm's playwright-core at the version tests/browser/package-lock.json pins.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium (once per machine)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends chromium \
    || { $sudo apt-get update -q && $sudo apt-get install -y --no-install-recommends chromium; }
fi

wanted=$(node -p "require('./tests/browser/package.json').dependencies['playwright-core']")
have=$(node -p "try { require('./tests/browser/node_modules/playwright-core/package.json').version } catch (_) { '' }")
if [ "$wanted" != "$have" ]; then
  echo "browser: installing playwright-core into tests/browser/node_modules"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "browser: $(chromium --version 2>/dev/null | head -1), playwright-core $(node -p "require('./tests/browser/node_modules/playwright-core/package.json').version")"
