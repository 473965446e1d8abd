#!/usr/bin/env bash
# Set up, then ruff, mypy and the test suite (offline, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser test (tests/server/test_browser.py) drives Debian's Chromium. Install it when missing and
# we are root; best effort: without it that one test skips, and CI goes on.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
        || echo "note: could not install chromium; the browser test will be skipped" >&2
fi
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
