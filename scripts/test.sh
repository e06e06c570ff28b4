#!/usr/bin/env bash
# Set up (once) and run every check: ruff (format and lint), mypy --strict on
# both packages, and the whole default test suite. Extra args go to pytest.
source "$(dirname "$0")/_venv.sh" test
ruff format --check .
ruff check .
mypy
python -m pytest "$@"
