#!/usr/bin/env bash
# The long torture/soak profile: the tests marked slow, with more examples.
source "$(dirname "$0")/_venv.sh" test
REPLAY_ENGINE_PROFILE=long python -m pytest -m slow --run-slow "$@"
