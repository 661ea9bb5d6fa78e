#!/usr/bin/env bash
# Set up everything opsproof needs on a Debian machine: server binaries from the system's packages
# (installed with apt when running as root, otherwise named exactly), then .venv with the project.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have python3 || missing+=(python3)
have python3 && { python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv); }
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || have initdb || missing+=(postgresql)
have pg_dump || missing+=(postgresql-client)
have redis-server || missing+=(redis-server)
for extra in "$@"; do have "$extra" || missing+=("$extra"); done

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && have apt-get; then
    echo "opsproof setup: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "opsproof setup: missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

stamp=.venv/.installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "opsproof setup: creating .venv and installing opsproof with its dependencies" >&2
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' >&2 || true
  .venv/bin/python -c 'import opsproof, pytest, psycopg, redis, httpx, pytest_html, xdist' \
    || { echo "opsproof setup: the Python install failed (see above)" >&2; exit 1; }
  touch "$stamp"
fi
