"""The public surface is exactly __all__, and it holds the CONTRACT's names."""

from __future__ import annotations

import replay_engine
import replay_engine.errors

CONTRACT_NAMES = {
    "Engine",
    "task",
    "external",
    "ReplayEngineError",
    "TaskFailed",
    "NonDeterminismError",
    "JournalCorruptError",
    "RunLockedError",
}


def test_all_is_sorted_and_matches_public_names() -> None:
    public = {n for n in vars(replay_engine) if not n.startswith("_")}
    # Submodules imported as attributes are not part of the re-exported surface.
    modules = {
        n for n in public if type(getattr(replay_engine, n)).__name__ == "module"
    }
    assert replay_engine.__all__ == sorted(replay_engine.__all__)
    assert set(replay_engine.__all__) == public - modules


def test_contract_names_are_exported() -> None:
    assert set(replay_engine.__all__) >= CONTRACT_NAMES


def test_every_error_derives_from_the_root() -> None:
    for name in replay_engine.errors.__all__:
        cls = getattr(replay_engine.errors, name)
        assert issubclass(cls, replay_engine.ReplayEngineError), name


def test_misuse_errors_are_also_type_errors() -> None:
    assert issubclass(replay_engine.ThunkRequired, TypeError)
    assert issubclass(replay_engine.PayloadError, TypeError)
