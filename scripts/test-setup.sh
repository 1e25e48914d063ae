#!/usr/bin/env bash
# What the tests need on a machine of this project's kind, set up if it is missing (idempotent):
# Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 started if down; Debian's Chromium
# (the dashboard's browser test) and strace with python3's seccomp binding (the container tests)
# installed when missing and this runs as root. Without root, a missing tool is named with the
# command that installs it, and the run stops. `npm test` runs it first (pretest); so does .ci/run.
set -euo pipefail

missing=()
as_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
  if as_root && command -v apt-get >/dev/null; then
    echo "test-setup: installing $*"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    missing+=("$* (apt-get install -y $*)")
  fi
}

if ! redis-cli ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  redis-cli ping >/dev/null 2>&1 || missing+=("Redis on 127.0.0.1:6379 (redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no)")
fi

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 || missing+=("PostgreSQL on 127.0.0.1:5432 (pg_ctlcluster \$(ls /etc/postgresql) main start)")
fi

[ -x /usr/bin/chromium ] || apt_install chromium
if ! command -v strace >/dev/null || ! /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
  apt_install strace python3-seccomp
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "test-setup: the tests need what is missing here:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi
echo "test-setup: Redis, PostgreSQL, Chromium, strace and python3-seccomp are ready"
