"""The one exception the format package raises.

The runtime (``replay_engine``) wraps it into ``JournalCorruptError`` with the
run, seq and key where it was found; this package knows bytes, not places.
"""

from __future__ import annotations


class FormatError(ValueError):
    """Bytes that do not follow the journal format, or a value it cannot hold."""
