#!/usr/bin/env bash
# The local AWS cloud: MiniStack (PyPI `ministack`, pinned) in a project-local
# virtual environment, bound to 127.0.0.1, run in its own process group so that
# `down` stops the server and every Lambda worker it spawned.
#
#   scripts/local-cloud.sh up       install if needed, start (or reuse), wait for health
#   scripts/local-cloud.sh down     stop the process group; leaves no process behind
#   scripts/local-cloud.sh status   prints "running <pid>" or "stopped"
#   scripts/local-cloud.sh env      prints the exports that point the AWS SDK and CLI at it
#
# Settings (environment): LOCAL_CLOUD_PORT (default 4566).
set -euo pipefail

MINISTACK_VERSION="1.5.33"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$root/.local-cloud"
venv="$root/.venv"
port="${LOCAL_CLOUD_PORT:-4566}"
endpoint="http://127.0.0.1:${port}"
pidfile="$state/ministack.pid"

healthy() { curl -fsS -m 2 "$endpoint/_ministack/health" >/dev/null 2>&1; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid; pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

install() {
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ministack') != '$MINISTACK_VERSION')" 2>/dev/null; then
    return 0
  fi
  echo "local-cloud: installing ministack==$MINISTACK_VERSION into .venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ministack==$MINISTACK_VERSION"
}

up() {
  mkdir -p "$state"
  if pid="$(running_pid)" && healthy; then
    echo "local-cloud: reusing MiniStack (pid $pid) at $endpoint" >&2
    return 0
  fi
  if healthy; then
    echo "local-cloud: port $port already answers but is not ours; set LOCAL_CLOUD_PORT" >&2
    return 1
  fi
  install
  # MiniStack keeps its state in memory: a new instance has no bootstrap stack and no
  # deployed stacks, so forget what was deployed to the previous one.
  rm -f "$state"/bootstrapped-* "$state"/*-outputs.json "$state"/*-fingerprint
  echo "local-cloud: starting MiniStack $MINISTACK_VERSION on $endpoint" >&2
  # setsid: its own session and process group, so `down` can stop the whole group.
  BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" LAMBDA_EXECUTOR=local SFN_WAIT_SCALE=0 \
    IOT_MTLS_ENABLED=0 MINISTACK_HOST=127.0.0.1 \
    setsid "$venv/bin/python" -m ministack >"$state/ministack.log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if healthy; then echo "local-cloud: healthy" >&2; return 0; fi
    if ! running_pid >/dev/null; then
      echo "local-cloud: MiniStack exited; last log lines:" >&2; tail -20 "$state/ministack.log" >&2; return 1
    fi
    sleep 0.5
  done
  echo "local-cloud: no health answer after 60 s; see $state/ministack.log" >&2
  return 1
}

down() {
  local pid
  if pid="$(running_pid)"; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
      pgrep -g "$pid" >/dev/null 2>&1 || break
      sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "local-cloud: stopped (process group $pid)" >&2
  else
    echo "local-cloud: not running" >&2
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if pid="$(running_pid)"; then echo "running $pid"; else echo "stopped"; fi ;;
  env)
    cat <<ENV
export AWS_ENDPOINT_URL=$endpoint
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export CDK_DISABLE_CLI_TELEMETRY=true
ENV
    ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
