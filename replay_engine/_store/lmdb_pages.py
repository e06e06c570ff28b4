"""Checking the LMDB pages a journal's newest commit can reach, before LMDB does.

LMDB trusts every page it reads: a branch or leaf page whose flags, bounds or
node offsets were damaged makes it fail an internal assertion and abort the
whole process (``SIGABRT``), so ``verify`` could not report anything. This
module walks, with plain reads of a read-only map of ``data.mdb``, every page
reachable from the newest valid meta page: the free-list tree, the main tree,
every named database and every sorted-duplicates sub-database, and the
overflow runs holding large values. Only reachable pages are checked: free,
stale and never-written pages may hold anything.

The layout is LMDB 0.9's (``mdb.c``), 64-bit little-endian: a 16-byte page
header (``mp_pgno``, ``mp_pad``, ``mp_flags``, then ``mp_lower`` and
``mp_upper``, or ``mp_pages`` for an overflow page), node pointers after it,
nodes with an 8-byte header (``mn_lo``, ``mn_hi``, ``mn_flags``,
``mn_ksize``) then the key then the data.
"""

from __future__ import annotations

import mmap
import os
import struct

from .files import DATA_FILE, read_meta_pages

__all__ = ["main_tree_problems", "page_problems", "reachable_past_end"]

P_BRANCH = 0x01
P_LEAF = 0x02
P_OVERFLOW = 0x04
P_META = 0x08
P_DIRTY = 0x10  # left set on inline sub-pages, which LMDB copies as they are
P_LEAF2 = 0x20
P_SUBP = 0x40
F_BIGDATA = 0x01
F_SUBDATA = 0x02
F_DUPDATA = 0x04
MDB_DUPSORT = 0x04
MDB_DUPFIXED = 0x10
P_INVALID = 0xFFFFFFFFFFFFFFFF

_HEADER = struct.Struct("<QHHHH")  # mp_pgno, mp_pad, mp_flags, mp_lower, mp_upper
_PAGES = struct.Struct("<I")  # mp_pages, in place of mp_lower/mp_upper
_NODE = struct.Struct("<HHHH")  # mn_lo, mn_hi, mn_flags, mn_ksize
_DB = struct.Struct("<IHHQQQQQ")  # md_pad, md_flags, md_depth, 4 counts, md_root
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
_PAGE_HEADER = 16
_NODE_HEADER = 8
_DBS_OFFSET = 16 + 24  # page header, then magic, version, address, map size
_MAX_DEPTH = 64
_MAX_PROBLEMS = 100
_META_BYTES = _DBS_OFFSET + 2 * _DB.size + 16  # to the last page and txnid
_ATTEMPTS = 5  # walks tried while other processes keep committing


class _Walk:
    # A plain class, not a dataclass: made at every CLI start, where a
    # dataclass costs about 0.4 ms to create (issue 16's start-up budget).

    __slots__ = (
        "data",
        "headed",
        "last_page",
        "named_databases",
        "page_size",
        "problems",
        "visited",
    )

    def __init__(
        self,
        data: bytes | mmap.mmap,
        page_size: int,
        last_page: int,
        named_databases: bool = True,
    ) -> None:
        self.data = data
        self.page_size = page_size
        self.last_page = last_page
        # Whether to walk the named databases' trees, or only the main tree's.
        self.named_databases = named_databases
        self.visited: set[int] = set()
        # The pages whose header was read (not an overflow run's later pages).
        self.headed: list[int] = []
        self.problems: list[str] = []

    def problem(self, pgno: int, what: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"LMDB page {pgno} {what}: the file is damaged")

    def page(self, pgno: int, where: str) -> bool:
        """Whether ``pgno`` can be read at all (and has not been already)."""
        if pgno < 2 or pgno > self.last_page:
            self.problem(
                pgno,
                f"is referenced by {where} but lies outside the commit's pages"
                f" 2..{self.last_page}",
            )
            return False
        if (pgno + 1) * self.page_size > len(self.data):
            self.problem(pgno, "lies past the end of the file")
            return False
        if pgno in self.visited:
            return False
        self.visited.add(pgno)
        self.headed.append(pgno)
        (stored,) = _U64.unpack_from(self.data, pgno * self.page_size)
        if stored != pgno:
            self.problem(pgno, f"says it is page {stored}")
            return False
        return True

    def tree(
        self, root: int, db_flags: int, leaf2: bool, where: str, key_size: int = 0
    ) -> None:
        """Walk the B-tree at ``root`` (``leaf2``: a DUPFIXED sub-database).

        ``key_size`` is a DUPFIXED sub-database's fixed value size (its
        record's ``md_pad``), or 0 when not known.
        """
        if root == P_INVALID:
            return
        stack = [(root, 0)]
        while stack and len(self.problems) < _MAX_PROBLEMS:
            pgno, depth = stack.pop()
            if depth > _MAX_DEPTH:
                self.problem(pgno, f"is more than {_MAX_DEPTH} levels deep in {where}")
                continue
            if not self.page(pgno, where):
                continue
            base = pgno * self.page_size
            _, _, flags, lower, upper = _HEADER.unpack_from(self.data, base)
            leaf = P_LEAF | P_LEAF2 if leaf2 else P_LEAF
            if flags not in (P_BRANCH, leaf):
                kind = "a branch or leaf page"
                self.problem(pgno, f"has flags {flags:#x} where {kind} was expected")
                continue
            if flags & P_LEAF2:
                # Its values are packed after the header: it has no node
                # pointers to check (reading them as offsets flagged every
                # healthy sub-database of a key with ~250+ events).
                self.leaf2_page(pgno, base, lower, upper, key_size)
                continue
            offsets = self.node_offsets(pgno, base, lower, upper)
            if offsets is None:
                continue
            for offset in offsets:
                node = base + offset
                lo, hi, nflags, ksize = _NODE.unpack_from(self.data, node)
                end = offset + _NODE_HEADER + ksize
                if flags == P_BRANCH:
                    if end > self.page_size:
                        self.problem(
                            pgno, f"has a node at {offset} running past the page"
                        )
                    else:
                        stack.append((lo | hi << 16 | nflags << 32, depth + 1))
                    continue
                self.leaf_node(pgno, offset, nflags, lo | hi << 16, ksize, db_flags)

    def node_offsets(
        self, pgno: int, base: int, lower: int, upper: int
    ) -> list[int] | None:
        if not _PAGE_HEADER <= lower <= upper <= self.page_size:
            self.problem(pgno, f"has bounds lower {lower}, upper {upper} out of order")
            return None
        offsets = []
        for i in range((lower - _PAGE_HEADER) >> 1):
            (offset,) = _U16.unpack_from(self.data, base + _PAGE_HEADER + 2 * i)
            if not upper <= offset <= self.page_size - _NODE_HEADER:
                self.problem(pgno, f"has node {i} at offset {offset}, outside the page")
                return None
            offsets.append(offset)
        return offsets

    def leaf2_page(
        self, pgno: int, base: int, lower: int, upper: int, key_size: int
    ) -> None:
        """Check a DUPFIXED leaf: ``count`` values of ``mp_pad`` bytes each.

        LMDB keeps ``mp_lower``/``mp_upper`` of such a page as if each value
        had a 2-byte pointer (``mdb_node_add``, ``mdb_page_split``: lower
        grows by 2, upper falls by size - 2 per value), so the count is
        ``(lower - 16) / 2`` and ``page_size - upper`` is count * (size - 2).
        """
        (size,) = _U16.unpack_from(self.data, base + 8)  # mp_pad
        if not _PAGE_HEADER <= lower <= upper <= self.page_size:
            self.problem(pgno, f"has bounds lower {lower}, upper {upper} out of order")
            return
        if size == 0 or (key_size and size != key_size):
            expected = (
                f" where its database's values have {key_size}" if key_size else ""
            )
            self.problem(pgno, f"has packed values of {size} bytes{expected}")
            return
        count = (lower - _PAGE_HEADER) >> 1
        if (
            _PAGE_HEADER + count * size > self.page_size
            or self.page_size - upper != count * (size - 2)
        ):
            self.problem(
                pgno,
                f"has bounds lower {lower}, upper {upper} that do not fit {count}"
                f" packed values of {size} bytes",
            )

    def leaf_node(
        self, pgno: int, offset: int, nflags: int, size: int, ksize: int, db_flags: int
    ) -> None:
        start = pgno * self.page_size + offset + _NODE_HEADER + ksize
        stored = 8 if nflags & F_BIGDATA else size
        if offset + _NODE_HEADER + ksize + stored > self.page_size:
            self.problem(pgno, f"has a node at {offset} running past the page")
            return
        where = f"a node of page {pgno}"
        if nflags & F_BIGDATA:
            if nflags & (F_SUBDATA | F_DUPDATA):
                self.problem(pgno, f"has a node at {offset} with flags {nflags:#x}")
                return
            (first,) = _U64.unpack_from(self.data, start)
            self.overflow(first, size, where)
        elif nflags & F_SUBDATA:
            if size != _DB.size:
                self.problem(pgno, f"has a sub-database record of {size} bytes")
                return
            pad, sub_flags, _, _, _, _, _, root = _DB.unpack_from(self.data, start)
            if nflags & F_DUPDATA:  # a sorted-duplicates sub-database
                leaf2 = bool(db_flags & MDB_DUPFIXED)
                self.tree(root, 0, leaf2, where, pad if leaf2 else 0)
            elif self.named_databases:  # a named database in the main tree
                self.tree(root, sub_flags, False, where)
        elif nflags & F_DUPDATA:  # an inline sub-page of sorted duplicates
            flags = _U16.unpack_from(self.data, start + 10)[0] if size >= 16 else None
            leaf = P_LEAF | P_SUBP | (P_LEAF2 if db_flags & MDB_DUPFIXED else 0)
            if flags is None or flags & ~P_DIRTY != leaf:
                shown = "none" if flags is None else f"{flags:#x}"
                self.problem(
                    pgno, f"has an inline sub-page at {offset} with flags {shown}"
                )

    def overflow(self, first: int, size: int, where: str) -> None:
        if not self.page(first, where):
            return
        base = first * self.page_size
        _, _, flags = struct.unpack_from("<QHH", self.data, base)
        if flags != P_OVERFLOW:
            self.problem(
                first, f"has flags {flags:#x} where an overflow page was expected"
            )
            return
        (pages,) = _PAGES.unpack_from(self.data, base + 12)
        need = -(-(size + _PAGE_HEADER) // self.page_size)
        if pages < need or first + pages - 1 > self.last_page:
            self.problem(
                first,
                f"starts an overflow run of {pages} pages, which does not fit a"
                f" {size}-byte value within the commit's pages",
            )
            return
        self.visited.update(range(first, first + pages))


def page_problems(
    path: str, *, named_databases: bool = True, pinned: int | None = None
) -> list[str]:
    """What is wrong with the LMDB pages of the journal at ``path`` (for verify).

    Every page reachable from the newest valid meta page is checked: its
    number, its flags against what its position needs, its bounds and node
    offsets, and each overflow run's length. Empty for a healthy file; any
    problem means LMDB would abort the process reading that page.
    ``named_databases=False`` checks only the free-page list and the main
    tree (see :func:`main_tree_problems`).

    The walk reads the file, not through LMDB, so it is no LMDB reader: once
    two newer commits exist, a writer in another process may reuse the pages
    of the commit being walked (LMDB keeps only the last commit's pages and
    its readers'), and the walk would read them half rewritten. Problems
    found while the walked meta page was replaced are not trusted: the walk
    is repeated (a few times). ``pinned`` is the id of a read transaction
    the caller holds open, whose pages LMDB reuses for nobody: its meta page
    is walked when it is still on disk, and its problems are real.
    """
    file = os.path.join(path, DATA_FILE)
    problems: list[str] = []
    try:
        for _ in range(_ATTEMPTS):
            metas, size = read_meta_pages(file)
            valid = [m for m in metas if m.valid]
            if not valid:
                return []  # meta_problems reports it
            newest = max(valid, key=lambda m: m.txnid)
            meta = next((m for m in valid if m.txnid == pinned), newest)
            with open(file, "rb") as stream:
                if size == 0 or (size < meta.needs_bytes and reachable_past_end(path)):
                    return []  # check_data_file refuses it
                with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    base = meta.index * meta.page_size
                    where = slice(base, base + _META_BYTES)
                    # The roots and last page are taken from one copy of the
                    # meta page, read twice alike (not torn by a commit), that
                    # still holds the commit chosen above.
                    before = data[where]
                    if data[where] != before or _txnid(before) != meta.txnid:
                        continue
                    walk = _Walk(data, meta.page_size, meta.last_page, named_databases)
                    problems = _walk(walk, before)
                    # Unchanged meta page: no commit after the next one, so no
                    # writer could reuse a page of this one during the walk.
                    if not problems or meta.txnid == pinned or data[where] == before:
                        return problems
    except OSError as exc:
        return [f"{DATA_FILE} cannot be read: {exc.strerror or exc}"]
    return problems


def reachable_past_end(path: str) -> bool:
    """Whether a page the newest commit can reach lies past the end of ``data.mdb``.

    LMDB's last page number may name pages it allocated and freed in the same
    commit without ever writing them (a large deletion does this), so a file
    shorter than the meta page says is truncated only if a reachable page is
    missing: free pages are never read. Walks every reachable page, again
    when a commit elsewhere replaced the meta page meanwhile (its pages may
    have been reused: see :func:`page_problems`).
    """
    file = os.path.join(path, DATA_FILE)
    past = False
    try:
        for _ in range(_ATTEMPTS):
            metas, _ = read_meta_pages(file)
            valid = [m for m in metas if m.valid]
            if not valid:
                return False  # check_data_file refuses it
            newest = max(valid, key=lambda m: m.txnid)
            with (
                open(file, "rb") as stream,
                mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data,
            ):
                walk = _Walk(data, newest.page_size, newest.last_page)
                base = newest.index * newest.page_size
                where = slice(base, base + _META_BYTES)
                before = data[where]
                _walk(walk, before)
                past = any("past the end of the file" in p for p in walk.problems)
                if not past or data[where] == before:
                    return past
    except (OSError, ValueError, struct.error):
        return True  # unreadable, empty or cut inside a meta page: truncated
    return past


def main_tree_problems(path: str) -> list[str]:
    """What is wrong with the pages every open of the journal reads.

    Opening a journal makes LMDB read the main tree (the named databases'
    records) and, on the first write, the free-page list; both are a few
    pages, so this runs on every open, unlike the whole walk of
    :func:`page_problems`, whose cost grows with the journal.
    """
    return page_problems(path, named_databases=False)


def _txnid(meta: bytes) -> int:
    """The transaction id in a copy of a meta page's first ``_META_BYTES``."""
    txnid: int = _U64.unpack_from(meta, _META_BYTES - 8)[0]
    return txnid


def _walk(walk: _Walk, meta: bytes) -> list[str]:
    """Walk the trees of ``meta``, a copy of the meta page's first bytes."""
    data, page_size = walk.data, walk.page_size
    for index in (0, 1):
        (flags,) = _U16.unpack_from(data, index * page_size + 10)
        if flags & P_META and flags != P_META:  # else meta_problems says
            walk.problem(index, f"has flags {flags:#x} where a meta page was expected")
    free = _DB.unpack_from(meta, _DBS_OFFSET)
    main = _DB.unpack_from(meta, _DBS_OFFSET + _DB.size)
    walk.tree(free[7], free[1], False, "the free-page list")
    walk.tree(main[7], main[1], False, "the main database")
    return walk.problems
