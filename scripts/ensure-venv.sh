#!/usr/bin/env bash
# Create the virtualenv (default .venv) with Python 3.11+ and install Corral into it,
# editable, with its dev extras. `make deps` runs this only when pyproject.toml changed.
set -euo pipefail
trap 'echo "ensure-venv: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

venv=${1:-.venv}

is_python311() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

pick_python() {
  local candidate
  for candidate in "${PYTHON:-python3}" python3.11 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && is_python311 "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  echo "ensure-venv: no Python 3.11+ found (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ -e "$venv/bin/python" ] && ! is_python311 "$venv/bin/python"; then
  echo "ensure-venv: $venv has no working Python 3.11+; recreating it"
  rm -rf "$venv"
fi
if [ ! -e "$venv/bin/python" ]; then
  python=$(pick_python)
  echo "ensure-venv: creating $venv with $python ($("$python" --version))"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -e '.[dev]'
