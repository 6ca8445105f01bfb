#!/usr/bin/env bash
# The main job: installs dependencies on a fresh clone, then runs `agentctl example`
# (local cloud up if needed, deploy if changed, publish the finding, follow, approve, report).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
export NODE_NO_WARNINGS=1  # the AWS SDK warns about Node 20 on every client; not actionable here
exec node_modules/.bin/tsx scripts/agentctl.ts example "$@"
