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
install_browser() {  # Debian's Chromium, for the report page's browser test
  if command -v chromium >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser test (once)..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
  else
    echo "note: no chromium; install it (apt-get install chromium) or the browser test is skipped" >&2
  fi
}
