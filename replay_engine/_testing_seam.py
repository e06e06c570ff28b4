"""The one internal door of ``replay_engine.testing`` and the pytest plugin.

Everything else they use is public (``replay_engine``, ``replay_engine.errors``,
``replay_engine.check``, ``journal_format``). What they need beyond that, and
only they may import from here:

* :class:`Hooks`: what a test steers in an execution (completion delays,
  failed attempts, fake answers, the clock, a simulated crash); an ``Engine``
  given ``hooks=`` consults them, a production engine has none;
* :func:`as_task` and :func:`importable_module_name`: a callable's task
  definition and the module name another process imports it by, so fakes
  find the tasks they replace and recorded names match;
* :func:`process_reference`: the ``module:qualname`` a run records for its
  process (``replay_engine.load_process`` is its inverse).

Keep it this small: a new need of ``testing`` is a reason to grow the public
API first.
"""

from __future__ import annotations

from ._run.hooks import Hooks
from ._run.process_ref import reference as process_reference
from ._run.tasks import as_task, importable_module_name

__all__ = ["Hooks", "as_task", "importable_module_name", "process_reference"]
