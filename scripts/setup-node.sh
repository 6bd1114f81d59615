#!/usr/bin/env bash
# Installs the npm packages (Node 24 itself comes from the npm registry as package "node")
# and builds the raw-socket addon for it. Skips the install when node_modules is current.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.bootbox-install-stamp
want="$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x node_modules/.bin/node ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
node_modules/.bin/node scripts/build-addon.mjs
