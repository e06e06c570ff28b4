"""A failed commit must not hang (issue 12, item 7).

Disk full (a real 2 MB tmpfs: LMDB reports EIO) and a journal with a newer
write version: the execution ends with a named error saying the journal could
not be written, releases the lock, and the journal still verifies.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import msgspec
import pytest

import journal_format as jf
from tests.adversarial import assert_clean_error, cli, raw
from tests.faults._support import HERE, build_posted, copy_of, mounted


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_ends_with_a_named_error(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    journal = disk / "journal"
    env = {"FAULT_SIDE": str(tmp_path / "side")}
    with mounted("-t", "tmpfs", "-o", "size=2m", "tmpfs", target=disk):
        done = cli(
            journal,
            *("run", "fault_flows:fill", "--run-id", "r1", "--input", "{}", "--json"),
            paths=[HERE],
            extra_env=env,
            timeout=15,
        )
        assert_clean_error(done)
        assert "could not be written" in done.output, done.describe()
        # The journal is intact where it stands, even on the full disk.
        verified = cli(journal, "verify", timeout=15)
        assert verified.returncode == 0, verified.describe()
        # With room again, the run is not locked: resume goes on (and fills
        # the disk again, ending the same way).
        subprocess.run(
            ["mount", "-o", "remount,size=3m", str(disk)],
            check=True,
            capture_output=True,
        )
        again = cli(journal, "resume", "r1", paths=[HERE], extra_env=env, timeout=15)
        assert "RunLockedError" not in again.output and "locked" not in again.stderr
        assert_clean_error(again)


@pytest.fixture
def newer_journal(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A waiting run with a result posted (a resume has work to commit), then
    the journal's write version raised past ours."""
    journal = copy_of(tmp_path_factory, tmp_path, "posted", build_posted)
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        meta = jf.decode_meta(txn.get(jf.META_FORMAT_KEY, db=dbs[jf.DB_META]))
        newer = jf.FormatMeta(
            magic=meta.magic,
            read_version=meta.read_version,
            write_version=jf.FORMAT_VERSION + 1,
        )
        txn.put(jf.META_FORMAT_KEY, msgspec.msgpack.encode(newer), db=dbs[jf.DB_META])
    return journal


@pytest.mark.parametrize(
    "command",
    [
        # The journal is a copy (not started here): name the process.
        ["resume", "r1", "--process", "fault_flows:waiter"],
        ["post", "r1", "--event", "ping"],
        [
            "run",
            "fault_flows:slow",
            "--run-id",
            "r2",
            "--input",
            '{"n": 1, "delay": 0}',
        ],
    ],
    ids=["resume", "post", "run"],
)
def test_newer_write_version_ends_with_a_named_error(
    newer_journal: Path, command: list[str]
) -> None:
    done = cli(newer_journal, *command, "--json", paths=[HERE], timeout=15)
    assert_clean_error(done)
    assert "FormatVersionError" in done.stdout, done.describe()
