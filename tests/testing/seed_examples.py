"""The seed document's examples (docs 000), as a user would port them to Python.

Scenarios 1-4, examples 1-4 and the pitfalls, each a process at module level
(so ``replay-engine check`` and the hash-seed probe can import it). Tasks are
deterministic functions of their args; a few are async with small latencies
so branches finish out of order on their own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from replay_engine import TaskFailed, task

# -- tasks ---------------------------------------------------------------------------


@task
def implement(feature: str) -> dict[str, Any]:
    return {
        "filesModified": [f"src/{feature}.py", f"src/{feature}_util.py"],
        "testFiles": [f"tests/test_{feature}.py"],
    }


@task
async def coverage_check(testFiles: list[str]) -> dict[str, Any]:
    await asyncio.sleep(0.003)
    return {"percent": 80 + len(testFiles)}


@task
def lint_check(files: list[str]) -> dict[str, Any]:
    return {"errors": 0, "files": len(files)}


@task
async def type_check(files: list[str]) -> dict[str, Any]:
    await asyncio.sleep(0.001)
    return {"ok": True, "checked": sorted(files)}


@task
def security_check(files: list[str]) -> dict[str, Any]:
    return {"issues": [f for f in files if "secret" in f]}


@task
def process_file(file: str) -> dict[str, Any]:
    if "bad" in file:
        raise ValueError(f"cannot parse {file}")
    return {"file": file, "lines": len(file) * 10}


@task
async def deploy(service: str, env: str) -> dict[str, Any]:
    await asyncio.sleep({"api": 0.004, "web": 0.0, "worker": 0.002}.get(service, 0))
    return {"service": service, "env": env, "success": True}


@task
def build(target: str) -> dict[str, Any]:
    return {"files": [f"{target}/main.py"], "previewUrl": f"https://preview/{target}"}


@task
async def unit_tests(files: list[str]) -> dict[str, Any]:
    await asyncio.sleep(0.002)
    return {"success": True, "ran": len(files)}


@task
def e2e_tests(url: str) -> dict[str, Any]:
    return {"success": url.startswith("https://")}


@task
def generate_docs(files: list[str]) -> dict[str, Any]:
    return {"pages": len(files)}


@task
def deploy_build(build: dict[str, Any]) -> dict[str, Any]:
    return {"deployed": build["previewUrl"]}


@task
def write_tests(feature: str, iteration: int) -> dict[str, Any]:
    return {"testFiles": [f"tests/test_{feature}_{iteration}.py"]}


@task
def implement_iteration(tests: dict[str, Any], iteration: int) -> dict[str, Any]:
    return {"filesModified": [f"src/v{iteration}.py"], "iteration": iteration}


@task
def run_tests(testFiles: list[str]) -> dict[str, Any]:
    return {"passed": len(testFiles), "failed": 0}


@task
def agent_scoring(implementation: dict[str, Any], **checks: Any) -> dict[str, Any]:
    return {"overallScore": 55 + 15 * implementation["iteration"]}


@task
def process_item(item: int) -> int:
    return item * item


@task
def integration_test(feature: str) -> dict[str, Any]:
    return {"passed": True, "feature": feature}


@task
def agent_final_review(feature: str, **results: Any) -> dict[str, Any]:
    return {"approved": True, "feature": feature, "inputs": sorted(results)}


@task
def task_a() -> str:
    return "A"


@task
def task_b(input: Any = None) -> str:
    return f"B({input})"


@task
def task_c() -> str:
    return "C"


@task
def task_fails() -> str:
    raise RuntimeError("B broke")


@task
async def slow_task() -> str:
    await asyncio.sleep(0.006)
    return "slow"


@task
async def fast_task() -> str:
    return "fast"


@task
async def medium_task() -> str:
    await asyncio.sleep(0.003)
    return "medium"


# -- scenarios -----------------------------------------------------------------------


async def scenario1_quality_checks(inputs: dict[str, Any], ctx: Any) -> Any:
    impl = await ctx.task(implement, {"feature": inputs["feature"]})
    coverage, lint, types, security = await ctx.parallel.all(
        [
            lambda: ctx.task(coverage_check, {"testFiles": impl["testFiles"]}),
            lambda: ctx.task(lint_check, {"files": impl["filesModified"]}),
            lambda: ctx.task(type_check, {"files": impl["filesModified"]}),
            lambda: ctx.task(security_check, {"files": impl["filesModified"]}),
        ]
    )
    return {
        "coverage": coverage,
        "lint": lint,
        "typeCheck": types,
        "security": security,
    }


async def scenario2_batch_files(inputs: dict[str, Any], ctx: Any) -> Any:
    files = inputs["files"]
    results = await ctx.parallel.map(
        files, lambda f: ctx.task(process_file, {"file": f})
    )
    return {"processed": len(results), "results": results}


async def scenario3_multi_service_deploy(inputs: dict[str, Any], ctx: Any) -> Any:
    results = await ctx.parallel.all(
        [
            lambda: ctx.task(deploy, {"service": "api", "env": inputs["env"]}),
            lambda: ctx.task(deploy, {"service": "web", "env": inputs["env"]}),
            lambda: ctx.task(deploy, {"service": "worker", "env": inputs["env"]}),
        ]
    )
    return {"success": all(r["success"] for r in results), "deployments": results}


async def scenario4_mixed(inputs: dict[str, Any], ctx: Any) -> Any:
    built = await ctx.task(build, {"target": inputs["target"]})
    tests, e2e, docs = await ctx.parallel.all(
        [
            lambda: ctx.task(unit_tests, {"files": built["files"]}),
            lambda: ctx.task(e2e_tests, {"url": built["previewUrl"]}),
            lambda: ctx.task(generate_docs, {"files": built["files"]}),
        ]
    )
    if tests["success"] and e2e["success"]:
        deployed = await ctx.task(deploy_build, {"build": built})
        return {"deployed": True, "deployResult": deployed, "docs": docs}
    return {"deployed": False, "reason": "Tests failed"}


# -- examples ------------------------------------------------------------------------


async def example1_tdd_quality_loop(inputs: dict[str, Any], ctx: Any) -> Any:
    feature, iteration, quality = inputs["feature"], 0, 0
    while iteration < inputs.get("maxIterations", 5) and quality < inputs.get(
        "targetQuality", 85
    ):
        iteration += 1
        tests = await ctx.task(
            write_tests, {"feature": feature, "iteration": iteration}
        )
        impl = await ctx.task(
            implement_iteration, {"tests": tests, "iteration": iteration}
        )
        results = await ctx.task(run_tests, {"testFiles": tests["testFiles"]})
        checks = await ctx.parallel.all(
            [
                lambda: ctx.task(coverage_check, {"testFiles": tests["testFiles"]}),  # noqa: B023
                lambda: ctx.task(lint_check, {"files": impl["filesModified"]}),  # noqa: B023
                lambda: ctx.task(type_check, {"files": impl["filesModified"]}),  # noqa: B023
                lambda: ctx.task(security_check, {"files": impl["filesModified"]}),  # noqa: B023
            ]
        )
        score = await ctx.task(
            agent_scoring,
            {"implementation": impl, "testResults": results, "qualityChecks": checks},
        )
        quality = score["overallScore"]
    return {"quality": quality, "iterations": iteration}


async def example2_files_with_errors(inputs: dict[str, Any], ctx: Any) -> Any:
    files = inputs["files"]

    async def one(file: str) -> dict[str, Any]:
        try:
            result = await ctx.task(process_file, {"file": file})
            return {"file": file, "success": True, "result": result}
        except TaskFailed as error:
            return {"file": file, "success": False, "error": error.message}

    results = await ctx.parallel.map(files, one)
    successful = [r for r in results if r["success"]]
    failed = [r for r in results if not r["success"]]
    ctx.log(f"Processed {len(successful)}/{len(files)} files")
    return {"successful": successful, "failed": failed}


async def example3_chunked(inputs: dict[str, Any], ctx: Any) -> Any:
    items, size = inputs["items"], inputs.get("chunkSize", 10)
    results: list[Any] = []
    for i in range(0, len(items), size):
        chunk = items[i : i + size]
        results.extend(
            await ctx.parallel.map(
                chunk, lambda item: ctx.task(process_item, {"item": item})
            )
        )
        ctx.log(f"Processed {min(i + size, len(items))}/{len(items)} items")
    return {"total": len(results), "results": results}


async def example4_final_verification(inputs: dict[str, Any], ctx: Any) -> Any:
    feature = inputs["feature"]
    history = []
    for iteration in (1, 2):
        tests = await ctx.task(
            write_tests, {"feature": feature, "iteration": iteration}
        )
        history.append(tests)
    last = history[-1]["testFiles"]
    final_tests, final_coverage, integration = await ctx.parallel.all(
        [
            lambda: ctx.task(run_tests, {"testFiles": last}),
            lambda: ctx.task(coverage_check, {"testFiles": last}),
            lambda: ctx.task(integration_test, {"feature": feature}),
        ]
    )
    review = await ctx.task(
        agent_final_review,
        {
            "feature": feature,
            "finalTests": final_tests,
            "finalCoverage": final_coverage,
            "integrationTests": integration,
        },
    )
    return {"finalReview": review}


# -- pitfalls ------------------------------------------------------------------------


async def pitfall1_wrong(inputs: Any, ctx: Any) -> Any:
    return await ctx.parallel.all(
        [ctx.task(task_a, {}), ctx.task(task_b, {}), ctx.task(task_c, {})]
    )


async def pitfall1_right(inputs: Any, ctx: Any) -> Any:
    return await ctx.parallel.all(
        [
            lambda: ctx.task(task_a, {}),
            lambda: ctx.task(task_b, {}),
            lambda: ctx.task(task_c, {}),
        ]
    )


async def pitfall2_right(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(task_a, {})
    return [a, await ctx.task(task_b, {"input": a})]


async def pitfall3_one_failure(inputs: Any, ctx: Any) -> Any:
    try:
        return await ctx.parallel.all(
            [
                lambda: ctx.task(slow_task, {}),
                lambda: ctx.task(task_fails, {}),
                lambda: ctx.task(medium_task, {}),
            ]
        )
    except TaskFailed as exc:
        return {"failed": exc.key, "error": [exc.error_type, exc.message]}


async def pitfall3_handled(inputs: Any, ctx: Any) -> Any:
    tasks = {"A": task_a, "B": task_fails, "C": task_c}

    async def one(name: str) -> dict[str, Any]:
        try:
            return {"id": name, "success": True, "result": await ctx.task(tasks[name])}
        except TaskFailed as error:
            return {"id": name, "success": False, "error": error.message}

    return await ctx.parallel.map(["A", "B", "C"], one)


async def pitfall4_order(inputs: Any, ctx: Any) -> Any:
    first, second, third = await ctx.parallel.all(
        [
            lambda: ctx.task(slow_task, {}),
            lambda: ctx.task(fast_task, {}),
            lambda: ctx.task(medium_task, {}),
        ]
    )
    return {"first": first, "second": second, "third": third}


async def pitfall5_chunked(inputs: Any, ctx: Any) -> Any:
    items, size, total = list(range(inputs["n"])), inputs["chunkSize"], 0
    for i in range(0, len(items), size):
        out = await ctx.parallel.map(
            items[i : i + size], lambda item: ctx.task(process_item, {"item": item})
        )
        total += sum(out)
    return total


async def pitfall5_limit(inputs: Any, ctx: Any) -> Any:
    out = await ctx.parallel.map(
        range(inputs["n"]),
        lambda item: ctx.task(process_item, {"item": item}),
        limit=inputs["limit"],
    )
    return sum(out)


EXAMPLES: list[tuple[Any, Any]] = [
    (scenario1_quality_checks, {"feature": "cart"}),
    (scenario2_batch_files, {"files": ["a.ts", "b.ts", "c.ts"]}),
    (scenario3_multi_service_deploy, {"env": "prod"}),
    (scenario4_mixed, {"target": "app"}),
    (example1_tdd_quality_loop, {"feature": "cart", "targetQuality": 85}),
    (example2_files_with_errors, {"files": ["a.ts", "bad1.ts", "c.ts", "bad2.ts"]}),
    (example3_chunked, {"items": list(range(12)), "chunkSize": 5}),
    (example4_final_verification, {"feature": "search"}),
    (pitfall1_wrong, None),
    (pitfall1_right, None),
    (pitfall2_right, None),
    (pitfall3_one_failure, None),
    (pitfall3_handled, None),
    (pitfall4_order, None),
    (pitfall5_chunked, {"n": 30, "chunkSize": 8}),
    (pitfall5_limit, {"n": 20, "limit": 4}),
]
"""Every example with inputs, as ``(process, inputs)``."""
