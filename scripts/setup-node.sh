#!/usr/bin/env bash
# Installs the npm packages (Node 24 itself comes from the npm registry as package "node")
# and builds the raw-socket addon for it. Skips the install when node_modules is current.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.bootbox-install-stamp
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x node_modules/.bin/node ]; then
  echo "setup: npm install"
  # Not "npm ci": the registry mirror lacks some optional platform packages (biome's
  # non-Linux builds), which npm ci treats as a lock mismatch; npm install skips them.
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
if ! node_modules/.bin/node --version >/dev/null 2>&1; then
  sh scripts/postinstall.sh
fi
node_modules/.bin/node scripts/build-addon.mjs
