# Sourced by the other scripts: make .venv (once) and install the project into it.
# Usage: source scripts/_venv.sh [EXTRAS]   e.g. "test" or "test,dev"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
extras=${1:-}
if [ -n "$extras" ]; then spec=".[$extras]"; else spec="."; fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${extras:-core}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -e "$spec"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# Bytecode for our own packages, as a regular (non-editable) pip install
# writes it: with PYTHONDONTWRITEBYTECODE set and no __pycache__, every
# interpreter would compile them from source again (about 55 ms of each CLI
# start; bench/README.md). Stale files are ignored by Python, so this is only
# a cache; -q and mtime checks keep it quick when nothing changed.
.venv/bin/python -m compileall -q replay_engine journal_format >/dev/null
