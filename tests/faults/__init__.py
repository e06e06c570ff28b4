"""Faults: disk full, damage, locks, signals, leftovers, bad input (issue 12)."""
