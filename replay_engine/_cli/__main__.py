"""``python -m replay_engine._cli``."""

from . import main

main()
