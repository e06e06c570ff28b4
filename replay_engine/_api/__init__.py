"""The API layer: ``Engine`` and what it returns.

Built on the run and storage layers; the CLI and ``testing`` use it through
the names ``replay_engine`` re-exports. ``Engine`` is composed in
:mod:`.engine` of one class per job; see that module's table.
"""
