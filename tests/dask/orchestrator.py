"""An orchestrator process for the SIGKILL test.

``python -m tests.dask.orchestrator run|resume JOURNAL ADDRESS RUN_ID [INPUTS_JSON]``
prints the run's status and ``stats.dispatched`` as JSON.
"""

from __future__ import annotations

import json
import sys

from replay_engine import Engine
from tests.dask.dask_flows import fan_out


def main(argv: list[str]) -> None:
    verb, journal, address, run_id = argv[:4]
    with Engine(journal, executor=address) as engine:
        if verb == "run":
            run = engine.run(fan_out, json.loads(argv[4]), run_id=run_id)
        else:
            run = engine.resume(run_id)
    print(json.dumps({"status": run.status, "dispatched": run.stats.dispatched}))


if __name__ == "__main__":
    main(sys.argv[1:])
