#!/usr/bin/env bash
# Install what eomatch needs on a fresh Debian/Ubuntu machine, then nothing more on re-runs:
#   system packages (apt, as root or through sudo), a Python venv in .venv, npm (for STAC Browser).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*"; }

need=()
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then sudo "$@";
  else
    local what="${need[*]:-PostgreSQL with PostGIS, nginx, chromium, npm}"
    echo "error: root is needed to install: ${what}; run as root, or: sudo apt-get update && sudo apt-get install -y ${need[*]:-postgresql postgresql-postgis nginx chromium npm python3-venv}" >&2
    exit 2
  fi
}

# PostgreSQL: 15 on Debian 12 (the tested setup); the distribution's own version elsewhere.
pg_version() {
  for v in 15 16 17 14; do
    if [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && dpkg -s "postgresql-$v-postgis-3" >/dev/null 2>&1; then echo "$v"; return; fi
  done
  for v in 15 16 17 14; do
    if apt-cache show "postgresql-$v-postgis-3" >/dev/null 2>&1; then echo "$v"; return; fi
  done
  echo 15
}

pkg_missing() { ! dpkg -s "$1" >/dev/null 2>&1; }
apt_updated=0
apt_update_once() { if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi; }

if ! command -v apt-cache >/dev/null 2>&1; then
  echo "error: this script supports Debian/Ubuntu (apt); install PostgreSQL+PostGIS, nginx, chromium, npm by hand" >&2
  exit 2
fi
if ! apt-cache show postgresql-15-postgis-3 >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt_update_once
fi
PG=$(pg_version)
for p in "postgresql-$PG" "postgresql-$PG-postgis-3" nginx chromium; do
  pkg_missing "$p" && need+=("$p")
done
command -v npm >/dev/null 2>&1 || need+=(npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing system packages: ${need[*]}"
  apt_update_once
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python >= 3.11 is needed ($("$PY" --version 2>&1) found); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.eomatch-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing eomatch and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import eomatch, stac_fastapi.pgstac, pypgstac, playwright' 
  echo "$want" > "$stamp"
fi
echo "postgresql=$PG" > .venv/.eomatch-pg
log "ready"
