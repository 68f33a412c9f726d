# Shared by scripts/dev and scripts/test: make .venv with Python >= 3.11 and install
# the project into it from its own files (pyproject.toml). Sourced, not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: mentorflow needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
install_project() {  # $1: the extras, e.g. "[test]" or ""
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$1"
}
