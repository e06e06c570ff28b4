"""The seed document's examples as ``(process, inputs)`` for the determinism tests.

The processes are the project's one port of the seed (``tests/engine/seed_flows.py``):
scenarios 1-4, examples 1-4 and pitfalls 1-5. ``assert_deterministic`` and
``replay-engine check`` must pass every one of them; the inputs are small so each
example explores its schedules quickly.
"""

from __future__ import annotations

from typing import Any

from tests.engine import seed_flows as sf

# Named here because tests single them out.
scenario1_quality_checks = sf.scenario1_quality_checks
pitfall1_right = sf.pitfall1_right

EXAMPLES: list[tuple[Any, Any]] = [
    (sf.scenario1_quality_checks, {"feature": "cart"}),
    (sf.scenario2_batch_files, {"files": ["a.ts", "b.ts", "c.ts"]}),
    (sf.scenario3_multi_service_deploy, {"env": "prod"}),
    (sf.scenario4_mixed, {"target": "app"}),
    (
        sf.example1_tdd_quality_loop,
        {"feature": "cart", "targetQuality": 85, "maxIterations": 3},
    ),
    (sf.example2_files_with_errors, {"files": ["a.ts", "bad1.ts", "c.ts", "bad2.ts"]}),
    (sf.example3_chunked, {"items": list(range(12)), "chunkSize": 5}),
    (sf.example4_final_verification, {"feature": "search"}),
    (sf.pitfall1_wrong, None),
    (sf.pitfall1_right, None),
    (sf.pitfall2_right, None),
    (sf.pitfall3_all, None),
    (sf.pitfall3_map, None),
    (sf.pitfall4_order, None),
    (sf.pitfall5_chunked, {"n": 30, "chunkSize": 8}),
    (sf.pitfall5_limit, {"n": 20, "limit": 4}),
]
"""Every example with inputs, as ``(process, inputs)``."""
