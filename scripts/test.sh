#!/usr/bin/env bash
# Quick start, command 2: install what is needed and run the whole test suite:
# typecheck, lint, unit and integration tests, lab tests in network namespaces with
# the real peers, the build of both binaries, the QEMU end-to-end tests, and the web UI
# (built, then driven in headless Chromium against a real box).
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh test || { echo "0 passed, 1 failed"; exit 1; }
bash scripts/setup-node.sh || { echo "0 passed, 1 failed"; exit 1; }
mkdir -p test-results
: > test-results/failures.txt
passed=0
failed=0
step() { # name, command...
  local name=$1; shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else echo "!! $name failed" | tee -a test-results/failures.txt; failed=$((failed + 1)); fi
}
ava_run() { # label, ava args...
  local label=$1; shift
  echo "== $label"
  local tap="test-results/$label.tap"
  node_modules/.bin/node node_modules/ava/entrypoints/cli.js --tap "$@" > "$tap" 2>&1
  local rc=$?
  local p f
  # a skipped test is not a pass: it counts as a failure
  p=$(grep -E '^ok [0-9]+' "$tap" | grep -cvE '# (SKIP|TODO)')
  f=$(( $(grep -cE '^not ok [0-9]+' "$tap") + $(grep -E '^ok [0-9]+' "$tap" | grep -cE '# (SKIP|TODO)') ))
  grep -E '^(not ok|# )' "$tap" | grep -vE '^# (tests|pass|skip|fail|todo)' | head -50
  # why each test failed: the diagnostic block after its "not ok" line, so the log says it
  awk '/^not ok [0-9]+/ { show = 1; n = 0; print "!! " $0; next }
       show && /^  \.\.\.$/ { show = 0; next }
       show && n < 25 { print "   " $0; n++ }' "$tap" | head -120 | tee -a test-results/failures.txt
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; tail -40 "$tap"; fi
  echo "   $label: $p passed, $f failed"
  passed=$((passed + p)); failed=$((failed + f))
}
step build-ui node_modules/.bin/node web-ui/build.ts
step typecheck node_modules/.bin/tsc -p tsconfig.json
step typecheck-ui node_modules/.bin/tsc -p web-ui/tsconfig.json
step lint node_modules/.bin/biome check .
ava_run unit test/unit test/integration
ava_run lab --serial test/lab
ava_run build --serial test/build
if [ -d test/e2e ] && ls test/e2e/*.test.ts >/dev/null 2>&1; then ava_run e2e --serial test/e2e; fi
ava_run ui --serial test/ui
# the failures again at the end, where a log's tail shows them
if [ -s test-results/failures.txt ]; then echo; echo "== why tests failed"; head -150 test-results/failures.txt; fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
