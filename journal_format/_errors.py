"""The one exception the format package raises.

The runtime (``replay_engine``) wraps it into ``JournalCorruptError`` with the
run, seq and key where it was found; this package knows bytes, not places.
"""

from __future__ import annotations

import msgspec


class FormatError(ValueError):
    """Bytes that do not follow the journal format, or a value it cannot hold."""


def refuse_extension(code: int, data: memoryview) -> object:
    """``ext_hook`` of every decoder: the format has no MessagePack extensions.

    Without it msgspec hands an unknown extension back as an ``Ext`` object,
    which would reach user code as a value nobody wrote.
    """
    raise msgspec.DecodeError(
        f"MessagePack extension type {code} ({len(data)} bytes) is not part of"
        " the journal format"
    )
