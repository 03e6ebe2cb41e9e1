# Sourced by scripts/train and scripts/test: make the venv $VENV (default .venv) and install
# scratchdl into it with the extras named in $1 ("" for none) and the pip constraints file
# $CONSTRAINTS if set; pip runs again only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "scratchdl needs Python >= 3.10; set PYTHON=/path/to/python3.x" >&2
  exit 2
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.installed-${1:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  target="."
  [ -n "$1" ] && target=".[$1]"
  "$VENV/bin/python" -m pip install --quiet ${CONSTRAINTS:+--constraint "$CONSTRAINTS"} -e "$target"
  touch "$stamp"
fi
