#!/usr/bin/env bash
# Set up (once) and run the main job: the crash-and-resume demo.
source "$(dirname "$0")/_venv.sh"
python -m replay_engine.demo "$@"
