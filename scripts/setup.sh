#!/usr/bin/env bash
# Set up everything opsproof needs on a Debian machine: server binaries from the system's packages
# (scripts/system-packages.txt; installed with apt when running as root, otherwise named exactly),
# then .venv with the project. Idempotent: a second run only checks. Extra "command package" pairs
# may be given as arguments (make bench asks for curl and jq).
set -euo pipefail
cd "$(dirname "$0")/.."

present() {  # a command on the PATH, or a path pattern that matches a file
  if [[ $1 == /* ]]; then compgen -G "$1" >/dev/null; else command -v "$1" >/dev/null 2>&1; fi
}

missing=()
while read -r what package; do
  [[ -z ${what:-} || $what == \#* ]] && continue
  present "$what" || missing+=("$package")
done < <(cat scripts/system-packages.txt; for pair in "$@"; do echo "$pair"; done)
present python3 && { python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv); }

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
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

# PM2 (the process checks' tests run real PM2 apps) comes from npm, into the project, never globally.
pm2=.venv/node/node_modules/.bin/pm2
if [[ ! -x $pm2 ]]; then
  echo "opsproof setup: installing pm2 with npm into .venv/node" >&2
  if ! npm install --prefix .venv/node --no-audit --no-fund --loglevel=error pm2@7 >&2 || [[ ! -x $pm2 ]]; then
    echo "opsproof setup: pm2 is missing: 'npm install --prefix .venv/node pm2@7' failed (is the npm registry" \
         "reachable? set npm's registry/proxy config); the PM2 tests skip saying so" >&2
  fi
fi
