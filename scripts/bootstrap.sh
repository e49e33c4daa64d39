# Sourced by scripts/run and scripts/test: make sure Python 3.11+, a virtualenv with the pinned
# requirements, and (through gridgov_tools/embedded_pg.py) PostgreSQL + PostGIS are there.
# As root on Debian it installs what is missing with apt; otherwise it prints the command.

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRIDGOV_VENV:-$PROJECT_ROOT/.venv}"

say() { printf 'gridgov: %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing $* with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    say "missing system packages; run: sudo apt-get install -y $*"
    exit 1
  fi
}

find_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

ensure_python() {
  PYTHON="$(find_python)" || { apt_install python3 python3-venv python3-pip; PYTHON="$(find_python)"; }
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3-venv
  fi
}

ensure_venv() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum "$PROJECT_ROOT/requirements.txt" | cut -d' ' -f1)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python requirements (pinned in requirements.txt)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PROJECT_ROOT/requirements.txt"
    echo "$want" >"$stamp"
  fi
}

ensure_python
ensure_venv
export PATH="$VENV/bin:$PATH"
export FLASK_APP=wsgi
cd "$PROJECT_ROOT"
