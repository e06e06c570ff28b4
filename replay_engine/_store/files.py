"""Checking a journal's files before LMDB maps them.

A journal is a directory someone may have handed us, so nothing about it is
taken on trust before LMDB touches it:

* Only a creating open may start a journal. Any other open of a missing
  directory, an empty one or an empty ``data.mdb`` is refused: silently
  initialising it would report a lost history as "0 runs".
* ``data.mdb`` and ``lock.mdb`` must be regular files, not symbolic links:
  LMDB opens them for writing, so a link would let a journal overwrite a
  file anywhere the user can write.
* LMDB maps ``data.mdb`` and trusts its two meta pages. A file shorter than
  its newest commit says makes the first read past the end a ``SIGBUS``, and
  a damaged newest meta page makes LMDB fall back to the older one, silently
  rolling back the last commit. Both are read here, with plain file reads, so
  they become named errors (and ``verify`` problems) instead.

The meta page layout is LMDB 0.9's (``mdb.c``): a 16-byte page header, then
``MDB_meta`` with the magic, the version, two 48-byte ``MDB_db`` records (the
first one's ``md_pad`` holds the page size), the last page used and the
transaction id. LMDB writes the meta page of transaction T to page T % 2, so
two healthy meta pages hold consecutive transaction ids, each on its page.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import Literal

from ..errors import JournalCorruptError, NotAJournalError

Access = Literal["create", "write", "read"]
"""How a journal is opened: ``create`` may start a new journal, ``write``
needs an existing one, ``read`` is inspection (no writes at all)."""

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"

_MAGIC = 0xBEEFC0DE
_DATA_VERSION = 1
_P_META = 0x08
_HEADER = struct.Struct("<QHH")  # mp_pgno, mp_pad, mp_flags
_META_HEAD = struct.Struct("<IIQQ")  # magic, version, address, map size
_META_TAIL = struct.Struct("<QQ")  # last page, txnid (after the two MDB_db)
_META_OFFSET = 16
_TAIL_OFFSET = _META_OFFSET + 24 + 2 * 48
_META_READS = 5  # reads tried while other processes keep committing
_MIN_PAGE = 512


class MetaPage:
    """One of the two LMDB meta pages of a ``data.mdb``."""

    # A plain class, not a dataclass: made at every CLI start, where a
    # dataclass costs about 0.4 ms to create (issue 16's start-up budget).

    __slots__ = ("index", "last_page", "page_size", "txnid", "valid")

    def __init__(
        self,
        index: int,
        valid: bool,
        page_size: int = 0,
        last_page: int = 0,
        txnid: int = 0,
    ) -> None:
        self.index = index
        self.valid = valid
        self.page_size = page_size
        self.last_page = last_page
        self.txnid = txnid

    def __repr__(self) -> str:
        return (
            f"MetaPage(index={self.index}, valid={self.valid},"
            f" page_size={self.page_size}, last_page={self.last_page},"
            f" txnid={self.txnid})"
        )

    @property
    def needs_bytes(self) -> int:
        """The file size this commit's pages need."""
        return (self.last_page + 1) * self.page_size


def prepare(path: str, access: Access, *, dir_mode: int = 0o700) -> bool:
    """Check (or, when creating, make) the journal directory at ``path``.

    Returns whether ``lock.mdb`` exists, which a read-only open needs to
    know: without one, no writer can be running, and reading without LMDB's
    lock table writes nothing at all.

    Raises:
        NotAJournalError: no journal here (and ``access`` is not ``create``),
            or one of its files is a link or not a regular file.
        JournalCorruptError: ``data.mdb`` is truncated or has no valid meta page.
    """
    if access == "create":
        _make_directory(path, dir_mode)
    elif not os.path.isdir(path):
        raise _not_a_journal(path, "no such directory")
    data = _regular_or_absent(path, DATA_FILE)
    lock = _regular_or_absent(path, LOCK_FILE)
    if data is None or data.st_size == 0:
        if access != "create":
            what = "no data.mdb" if data is None else "an empty data.mdb"
            raise _not_a_journal(path, what)
        return lock is not None
    check_data_file(path)
    return lock is not None


def check_data_file(path: str) -> tuple[MetaPage, MetaPage]:
    """Read both meta pages and check the file holds the newest commit.

    Raises:
        JournalCorruptError: no valid meta page, or the file is shorter than
            the newest commit needs (LMDB would die of ``SIGBUS`` reading it).
    """
    file = os.path.join(path, DATA_FILE)
    metas, size = read_meta_pages(file)
    valid = [m for m in metas if m.valid]
    if not valid:
        raise JournalCorruptError(
            f"journal {path}: {DATA_FILE} has no valid LMDB meta page ({size}"
            " bytes): the file is truncated or overwritten. Restore it from a"
            " backup; nothing was read or written."
        )
    newest = max(valid, key=lambda m: m.txnid)
    if newest.needs_bytes > size and _truncated(path):
        raise JournalCorruptError(
            f"journal {path}: {DATA_FILE} is truncated: its last commit"
            f" (transaction {newest.txnid}) needs {newest.needs_bytes} bytes and the"
            f" file has {size}. Restore it from a backup; nothing was read or"
            " written."
        )
    return metas


def _truncated(path: str) -> bool:
    # The tail past the end may be pages LMDB allocated and freed unwritten
    # (after a large deletion): only a missing reachable page is truncation.
    from .lmdb_pages import reachable_past_end  # it imports this module

    return reachable_past_end(path)


def meta_problems(path: str) -> list[str]:
    """What is wrong with the meta pages of the journal at ``path`` (for verify).

    Empty when both pages are valid, each on its page, with consecutive
    transaction ids: anything else means a meta page was damaged, and LMDB
    may be serving an older commit than the last one made.

    The two pages are read one after the other while other processes may
    commit (a writer rewrites one of them per commit), so a read that finds
    them apart is trusted only when a second read finds the same two pages.
    """
    file = os.path.join(path, DATA_FILE)
    problems: list[str] = []
    try:
        for _ in range(_META_READS):
            metas, _ = read_meta_pages(file)
            problems = _problems_of(metas)
            if not problems:
                return []
            again, _ = read_meta_pages(file)
            if [(m.valid, m.txnid) for m in again] == [
                (m.valid, m.txnid) for m in metas
            ]:
                return problems
    except OSError as exc:
        return [f"{DATA_FILE} cannot be read: {exc.strerror or exc}"]
    return problems


def _problems_of(metas: tuple[MetaPage, MetaPage]) -> list[str]:
    problems = [
        f"LMDB meta page {m.index} is damaged (bad magic, version or flags):"
        " the last commit may have been rolled back"
        for m in metas
        if not m.valid
    ]
    if problems:
        return problems
    first, second = metas
    for meta in metas:
        if meta.txnid % 2 != meta.index and not (first.txnid == second.txnid == 0):
            problems.append(
                f"LMDB meta page {meta.index} holds transaction {meta.txnid}, which"
                f" belongs on page {meta.txnid % 2}: the page is damaged and the"
                " last commit may have been rolled back"
            )
    gap = abs(first.txnid - second.txnid)
    if not problems and gap != 1 and not (first.txnid == second.txnid == 0):
        problems.append(
            f"LMDB meta pages disagree (page 0: transaction {first.txnid}, page 1:"
            f" transaction {second.txnid}): one is damaged and the last commit"
            " may have been rolled back"
        )
    return problems


def read_meta_pages(file: str) -> tuple[tuple[MetaPage, MetaPage], int]:
    """Both meta pages of ``file`` and its size, read without mapping it."""
    with open(file, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        head = stream.read(_TAIL_OFFSET + _META_TAIL.size)
        first = _parse(head, 0)
        page_size = first.page_size if first.valid else 4096
        stream.seek(page_size)
        second = _parse(stream.read(_TAIL_OFFSET + _META_TAIL.size), 1)
    return (first, second), size


def _parse(page: bytes, index: int) -> MetaPage:
    if len(page) < _TAIL_OFFSET + _META_TAIL.size:
        return MetaPage(index, valid=False)
    pgno, _, flags = _HEADER.unpack_from(page, 0)
    magic, version, _, _ = _META_HEAD.unpack_from(page, _META_OFFSET)
    (page_size,) = struct.unpack_from("<I", page, _META_OFFSET + 24)
    last_page, txnid = _META_TAIL.unpack_from(page, _TAIL_OFFSET)
    valid = (
        pgno == index
        and flags & _P_META
        and magic == _MAGIC
        and version == _DATA_VERSION
        and page_size >= _MIN_PAGE
        and page_size & (page_size - 1) == 0
    )
    if not valid:
        return MetaPage(index, valid=False)
    return MetaPage(index, True, page_size, last_page, txnid)


def _make_directory(path: str, mode: int) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        raise NotAJournalError(
            f"{path} is not a directory; a journal is a directory (pick another"
            " --journal path)",
            path=path,
        )
    os.makedirs(path, mode=mode, exist_ok=True)


def _regular_or_absent(path: str, name: str) -> os.stat_result | None:
    try:
        info = os.lstat(os.path.join(path, name))
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise NotAJournalError(
            f"refusing to open the journal {path}: its {name} is {kind}. A"
            " journal's files must be regular files inside its directory (opening"
            " it would write through the link); nothing was read or written.",
            path=path,
        )
    return info


def _not_a_journal(path: str, what: str) -> NotAJournalError:
    return NotAJournalError(
        f"{path} is not a journal ({what}). Only `replay-engine run`"
        " (or Engine(path) in Python) creates a journal: check --journal or"
        " $REPLAY_ENGINE_JOURNAL. Nothing was written.",
        path=path,
    )
