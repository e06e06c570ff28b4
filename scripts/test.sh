#!/usr/bin/env bash
# Set up (once) and run every check: ruff (format and lint), mypy --strict on
# both packages, and the whole default test suite. Extra args go to pytest.
source "$(dirname "$0")/_venv.sh" test,dev
# The timeline and console tests drive headless Chromium (Debian's package).
# Install it when we can (root with apt); without it that one test is skipped.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the timeline test..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the timeline screenshot test will be skipped"
fi
ruff format --check .
ruff check .
mypy
python -m pytest "$@"
