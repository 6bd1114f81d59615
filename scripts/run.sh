#!/usr/bin/env bash
# Quick start, command 1: install what is needed and run the box.
# With a board config (/etc/bootbox/config.json, or BOOTBOX_CONFIG) it serves that;
# otherwise it serves in lab mode on a virtual private switch (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh run
bash scripts/setup-node.sh
node_modules/.bin/node web-ui/build.ts
config="${BOOTBOX_CONFIG:-/etc/bootbox/config.json}"
if [ -f "$config" ]; then
  exec node_modules/.bin/node firmware/main.ts serve --config "$config" "$@"
fi
exec node_modules/.bin/node firmware/main.ts serve --lab "$@"
