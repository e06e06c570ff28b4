"""Scopes hand out invocation keys by the program's structure.

The root scope's calls are ``0, 1, 2 …``; branch ``j`` of the group at key
``k`` is a scope whose calls are ``k.j.0, k.j.1 …``. A key depends only on
which call it is in which branch, never on timing. The current scope travels
in a context variable, so ``ctx`` (one object shared by every branch) knows
which branch a call comes from: each branch runs in its own copy of the
context.
"""

from __future__ import annotations

import contextvars

import journal_format as jf
from journal_format import MAX_INVOCATION_KEY_BYTES, encode_component
from journal_format._keys import COMPONENTS

from ..errors import ReplayEngineError


class Scope:
    """The calls of one sequential thread of a process (the root or a branch)."""

    # parallel.py's refill builds a map branch's Scope slot by slot (no
    # __init__ call on the replay path): a slot added here is set there too.
    __slots__ = ("_branch", "_text", "logs_at", "next_index", "prefix")

    def __init__(
        self, prefix: bytes, text: str = "", branch: int | None = None
    ) -> None:
        self.prefix = prefix
        # The human form of ``prefix`` with a trailing dot (``"3.1."``), built
        # only when needed (live calls): replay never asks for it.
        self._text = text
        self._branch = branch
        self.next_index = 0
        self.logs_at: dict[int, int] | None = None

    @property
    def text(self) -> str:
        """The human form of the prefix with a trailing dot (``"3.1."``), or ``""``."""
        if self._branch is not None:
            self._text = f"{self._text}{self._branch}."
            self._branch = None
        return self._text

    def next_key(self) -> bytes:
        """Take the next invocation key of this scope."""
        index = self.next_index
        self.next_index = index + 1
        # encode_component(index), inlined for the replay hot path (a ctx
        # call per key): the table covers indexes below 65,536.
        part = COMPONENTS[index] if index < 65536 else None
        key = self.prefix + (part if part is not None else encode_component(index))
        if len(key) > MAX_INVOCATION_KEY_BYTES:
            raise ReplayEngineError(
                f"invocation key {jf.key_bytes_to_text(key)} is too deep for the"
                " journal (nesting is limited to about 40 levels)"
            )
        return key

    def last_text(self) -> str:
        """Human form of the key :meth:`next_key` returned last (``"3.1.0"``)."""
        if self._branch is not None:  # ``text``, inline: once per live call
            self._text = f"{self._text}{self._branch}."
            self._branch = None
        return f"{self._text}{self.next_index - 1}"

    def log_anchor(self) -> tuple[bytes, int]:
        """Where a log line sits: the next call's key, and its ordinal there.

        Log lines take no key of their own, so adding one never shifts the keys
        of later calls.
        """
        index = self.next_index
        if self.logs_at is None:
            self.logs_at = {}
        ordinal = self.logs_at.get(index, 0)
        self.logs_at[index] = ordinal + 1
        return self.prefix + encode_component(index), ordinal


current_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar(
    "replay_engine_scope"
)
