"""The public surface of ``journal_format`` is exactly the list written here.

It is what readers and writers of the format need: the event records and
their codecs, the key codec, payload encoding and content addresses, the LMDB
layout and the checkpoint index. A name added to or dropped from ``__all__``
fails ``test_all_is_pinned`` until this list is updated on purpose, together
with ``docs/journal-format.md``.
"""

from __future__ import annotations

import types

import journal_format as jf

EXPECTED_ALL = [
    "ACTIVE_STATUSES",
    "ADDRESS_SIZE",
    "CHAIN_BROKEN",
    "DB_ACTIVE",
    "DB_BLOBS",
    "DB_CHECKPOINTS",
    "DB_EVENTS",
    "DB_KEYS",
    "DB_META",
    "DB_RUNS",
    "EFFECT",
    "ENDED_STATUSES",
    "EVENT_TYPES",
    "FAIL_FAST",
    "FINISHED_STATUSES",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_INVOCATION_KEY_BYTES",
    "META_FORMAT_KEY",
    "PATCH",
    "RACE",
    "RECORD_ENCODER",
    "TIMER",
    "VALUE",
    "ActiveEntry",
    "AttemptFailed",
    "CallEntry",
    "CallIndex",
    "CancelRequested",
    "Checkpoint",
    "DamagedEvent",
    "EffectAbandoned",
    "EffectClaimed",
    "EffectCompleted",
    "EffectFailed",
    "EffectRequested",
    "Envelope",
    "ErrorInfo",
    "Event",
    "ExecutionStarted",
    "FailedFast",
    "FormatError",
    "FormatMeta",
    "LogLine",
    "OrphanOutcome",
    "PatchMarker",
    "RaceWon",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunRecord",
    "RunStarted",
    "RunTimedOut",
    "RunWaiting",
    "SignalReceived",
    "TimerFired",
    "TimerStarted",
    "ValueRecorded",
    "address_of",
    "blobs_for",
    "check_blob",
    "check_run_id",
    "checkpoint_mismatch",
    "decode_checkpoint",
    "decode_envelope",
    "decode_key",
    "decode_meta",
    "decode_payload",
    "decode_run_record",
    "encode_checkpoint",
    "encode_component",
    "encode_key",
    "encode_payload",
    "encode_record",
    "event_key",
    "event_tag",
    "format_key",
    "genesis_digest",
    "key_bytes_to_text",
    "match_valid_key",
    "out_of_place",
    "pack_active",
    "pack_seq",
    "parse_key",
    "payload_ref",
    "ref_is_inline",
    "run_prefix",
    "seal",
    "seal_checkpoint",
    "seq_of_event_key",
    "unpack_active",
    "unpack_seq",
    "unseal",
    "unseal_checkpoint",
]


def test_all_is_pinned() -> None:
    assert jf.__all__ == EXPECTED_ALL


def test_every_exported_name_resolves() -> None:
    for name in jf.__all__:
        assert getattr(jf, name, None) is not None, name


def test_nothing_public_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(jf).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(jf.__all__)


def test_callables_and_classes_are_documented() -> None:
    for name in jf.__all__:
        value = getattr(jf, name)
        # A bound C method (match_valid_key is a regex's fullmatch, for
        # speed) cannot carry a docstring: its attribute docstring documents it.
        if callable(value) and not isinstance(value, types.BuiltinMethodType):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
