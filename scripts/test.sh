#!/usr/bin/env bash
# The whole test suite: lint, typecheck, unit and CDK assertion tests, then the
# integration tests on the local AWS cloud (started here if needed and stopped at
# the end if this run started it). Installs dependencies on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
echo "== lint"; npx eslint .
echo "== typecheck"; npx tsc --noEmit -p tsconfig.json
echo "== unit and CDK assertion tests"; npx vitest run --config vitest.config.ts
echo "== integration tests (local AWS cloud)"; npx vitest run --config vitest.integ.config.ts
