"""The seed document's workflows (scenarios 1-4, examples 1-4, pitfalls 1-5).

Written as our users would port them from the seed's JavaScript. Tasks are
deterministic functions of their args (so a resumed run must reproduce the
reference run exactly) and report every dispatch on the side channel. A few
are async with small latencies so branches really finish out of order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from replay_engine import TaskFailed, task

from .flows import GAUGE, note

# -- tasks ---------------------------------------------------------------------------


@task
def implement(feature: str) -> dict[str, Any]:
    note("start", "implement")
    return {
        "filesModified": [f"src/{feature}.py", f"src/{feature}_util.py"],
        "testFiles": [f"tests/test_{feature}.py"],
    }


@task
async def coverage_check(testFiles: list[str]) -> dict[str, Any]:
    note("start", "coverage_check")
    await asyncio.sleep(0.01)
    return {"percent": 80 + len(testFiles)}


@task
def lint_check(files: list[str]) -> dict[str, Any]:
    note("start", "lint_check")
    return {"errors": 0, "files": len(files)}


@task
async def type_check(files: list[str]) -> dict[str, Any]:
    note("start", "type_check")
    await asyncio.sleep(0.005)
    return {"ok": True, "checked": sorted(files)}


@task
def security_check(files: list[str]) -> dict[str, Any]:
    note("start", "security_check")
    return {"issues": [f for f in files if "secret" in f]}


@task
def process_file(file: str) -> dict[str, Any]:
    note("start", "process_file")
    if "bad" in file:
        raise ValueError(f"cannot parse {file}")
    return {"file": file, "lines": len(file) * 10}


DEPLOY_LATENCY = {"api": 0.03, "web": 0.0, "worker": 0.015}


@task
async def deploy(service: str, env: str) -> dict[str, Any]:
    note("start", "deploy")
    await asyncio.sleep(DEPLOY_LATENCY.get(service, 0.0))
    return {"service": service, "env": env, "success": True}


@task
def build(target: str) -> dict[str, Any]:
    note("start", "build")
    return {
        "files": [f"{target}/main.py", f"{target}/lib.py"],
        "previewUrl": f"https://preview/{target}",
    }


@task
async def unit_tests(files: list[str]) -> dict[str, Any]:
    note("start", "unit_tests")
    await asyncio.sleep(0.01)
    return {"success": not any("broken" in f for f in files), "ran": len(files)}


@task
def e2e_tests(url: str) -> dict[str, Any]:
    note("start", "e2e_tests")
    return {"success": url.startswith("https://"), "url": url}


@task
def generate_docs(files: list[str]) -> dict[str, Any]:
    note("start", "generate_docs")
    return {"pages": len(files)}


@task
def deploy_build(build: dict[str, Any]) -> dict[str, Any]:
    note("start", "deploy_build")
    return {"deployed": build["previewUrl"]}


@task
def write_tests(feature: str, iteration: int) -> dict[str, Any]:
    note("start", "write_tests")
    return {"testFiles": [f"tests/test_{feature}_{iteration}.py"]}


@task
def implement_iteration(tests: dict[str, Any], iteration: int) -> dict[str, Any]:
    note("start", "implement_iteration")
    return {"filesModified": [f"src/v{iteration}.py"], "iteration": iteration}


@task
def run_tests(testFiles: list[str]) -> dict[str, Any]:
    note("start", "run_tests")
    return {"passed": len(testFiles), "failed": 0}


@task
def agent_scoring(
    tests: dict[str, Any],
    testResults: dict[str, Any],
    implementation: dict[str, Any],
    qualityChecks: dict[str, Any],
) -> dict[str, Any]:
    note("start", "agent_scoring")
    # Each iteration improves the score by 15: 70, 85, 100 …
    return {"overallScore": 55 + 15 * implementation["iteration"]}


@task
def process_item(item: int) -> int:
    note("start", "process_item")
    return item * item


@task
async def process_item_held(item: int) -> int:
    """Holds a gauge slot for a while: lets tests measure concurrency."""
    note("start", "process_item_held")
    with GAUGE.held():
        await asyncio.sleep(0.005)
    return item * 2


@task
def integration_test(feature: str) -> dict[str, Any]:
    note("start", "integration_test")
    return {"passed": True, "feature": feature}


@task
def agent_final_review(
    feature: str,
    finalTests: dict[str, Any],
    finalCoverage: dict[str, Any],
    integrationTests: dict[str, Any],
) -> dict[str, Any]:
    note("start", "agent_final_review")
    approved = finalTests["failed"] == 0 and integrationTests["passed"]
    return {
        "approved": approved,
        "feature": feature,
        "coverage": finalCoverage["percent"],
    }


@task
def task_a() -> str:
    note("start", "task_a")
    return "A"


@task
def task_b(input: Any = None) -> str:
    note("start", "task_b")
    return f"B({input})"


@task
def task_c() -> str:
    note("start", "task_c")
    return "C"


@task
async def task_a_slow() -> str:
    note("start", "task_a_slow")
    await asyncio.sleep(0.03)
    return "A"


@task
async def task_b_fails() -> str:
    note("start", "task_b_fails")
    raise RuntimeError("B broke")


@task
async def task_b_fails_slowly() -> str:
    note("start", "task_b_fails_slowly")
    await asyncio.sleep(0.03)
    raise RuntimeError("B broke late")


@task
async def task_c_slow() -> str:
    note("start", "task_c_slow")
    await asyncio.sleep(0.04)
    return "C"


@task
async def task_c_fails() -> str:
    note("start", "task_c_fails")
    raise RuntimeError("C broke early")


@task
async def slow_task() -> str:
    note("start", "slow_task")
    await asyncio.sleep(0.06)
    return "slow"


@task
async def fast_task() -> str:
    note("start", "fast_task")
    await asyncio.sleep(0)
    return "fast"


@task
async def medium_task() -> str:
    note("start", "medium_task")
    await asyncio.sleep(0.03)
    return "medium"


# -- scenarios -----------------------------------------------------------------------


async def scenario1_quality_checks(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
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


async def scenario2_batch_files(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    files = inputs["files"]
    results = await ctx.parallel.map(
        files, lambda f: ctx.task(process_file, {"file": f})
    )
    return {"processed": len(results), "results": results}


async def scenario3_multi_service_deploy(
    inputs: dict[str, Any], ctx: Any
) -> dict[str, Any]:
    results = await ctx.parallel.all(
        [
            lambda: ctx.task(deploy, {"service": "api", "env": inputs["env"]}),
            lambda: ctx.task(deploy, {"service": "web", "env": inputs["env"]}),
            lambda: ctx.task(deploy, {"service": "worker", "env": inputs["env"]}),
        ]
    )
    return {"success": all(r["success"] for r in results), "deployments": results}


async def scenario4_mixed(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    build_result = await ctx.task(build, {"target": inputs["target"]})
    test_result, e2e_result, doc_result = await ctx.parallel.all(
        [
            lambda: ctx.task(unit_tests, {"files": build_result["files"]}),
            lambda: ctx.task(e2e_tests, {"url": build_result["previewUrl"]}),
            lambda: ctx.task(generate_docs, {"files": build_result["files"]}),
        ]
    )
    if test_result["success"] and e2e_result["success"]:
        deploy_result = await ctx.task(deploy_build, {"build": build_result})
        return {"deployed": True, "deployResult": deploy_result, "docs": doc_result}
    return {"deployed": False, "reason": "Tests failed"}


# -- examples ------------------------------------------------------------------------


async def example1_tdd_quality_loop(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    feature = inputs["feature"]
    target_quality = inputs.get("targetQuality", 85)
    max_iterations = inputs.get("maxIterations", 5)
    iteration = 0
    quality = 0
    while iteration < max_iterations and quality < target_quality:
        iteration += 1
        tests = await ctx.task(
            write_tests, {"feature": feature, "iteration": iteration}
        )
        impl = await ctx.task(
            implement_iteration, {"tests": tests, "iteration": iteration}
        )
        test_results = await ctx.task(run_tests, {"testFiles": tests["testFiles"]})
        coverage, lint, types, security = await ctx.parallel.all(
            [
                lambda: ctx.task(coverage_check, {"testFiles": tests["testFiles"]}),  # noqa: B023
                lambda: ctx.task(lint_check, {"files": impl["filesModified"]}),  # noqa: B023
                lambda: ctx.task(type_check, {"files": impl["filesModified"]}),  # noqa: B023
                lambda: ctx.task(security_check, {"files": impl["filesModified"]}),  # noqa: B023
            ]
        )
        score = await ctx.task(
            agent_scoring,
            {
                "tests": tests,
                "testResults": test_results,
                "implementation": impl,
                "qualityChecks": {
                    "coverage": coverage,
                    "lint": lint,
                    "typeCheck": types,
                    "security": security,
                },
            },
        )
        quality = score["overallScore"]
    return {"quality": quality, "iterations": iteration}


async def example2_files_with_errors(
    inputs: dict[str, Any], ctx: Any
) -> dict[str, Any]:
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


async def example3_chunked(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    items = inputs["items"]
    chunk_size = inputs.get("chunkSize", 10)
    results: list[Any] = []
    for i in range(0, len(items), chunk_size):
        chunk = items[i : i + chunk_size]
        chunk_results = await ctx.parallel.map(
            chunk, lambda item: ctx.task(process_item, {"item": item})
        )
        results.extend(chunk_results)
        ctx.log(f"Processed {min(i + chunk_size, len(items))}/{len(items)} items")
    return {"total": len(results), "results": results}


async def example4_final_verification(
    inputs: dict[str, Any], ctx: Any
) -> dict[str, Any]:
    feature = inputs["feature"]
    # ... implementation phases ...
    iteration_results = []
    for iteration in (1, 2):
        tests = await ctx.task(
            write_tests, {"feature": feature, "iteration": iteration}
        )
        impl = await ctx.task(
            implement_iteration, {"tests": tests, "iteration": iteration}
        )
        iteration_results.append({"tests": tests, "impl": impl})
    iteration = len(iteration_results)
    last_tests = iteration_results[iteration - 1]["tests"]["testFiles"]
    final_test, final_coverage, integration = await ctx.parallel.all(
        [
            lambda: ctx.task(run_tests, {"testFiles": last_tests}),
            lambda: ctx.task(coverage_check, {"testFiles": last_tests}),
            lambda: ctx.task(integration_test, {"feature": feature}),
        ]
    )
    final_review = await ctx.task(
        agent_final_review,
        {
            "feature": feature,
            "finalTests": final_test,
            "finalCoverage": final_coverage,
            "integrationTests": integration,
        },
    )
    return {"finalReview": final_review}


# -- pitfalls ------------------------------------------------------------------------


async def pitfall1_wrong(inputs: Any, ctx: Any) -> Any:
    return await ctx.parallel.all(
        [ctx.task(task_a, {}), ctx.task(task_b, {}), ctx.task(task_c, {})]
    )


async def pitfall1_caught(inputs: Any, ctx: Any) -> Any:
    try:
        await ctx.parallel.all([ctx.task(task_a, {}), ctx.task(task_b, {})])
    except TypeError as exc:
        return {"caught": type(exc).__name__, "message": str(exc)}
    return {"caught": None}


async def pitfall1_right(inputs: Any, ctx: Any) -> Any:
    return await ctx.parallel.all(
        [
            lambda: ctx.task(task_a, {}),
            lambda: ctx.task(task_b, {}),
            lambda: ctx.task(task_c, {}),
        ]
    )


async def pitfall2_wrong(inputs: Any, ctx: Any) -> Any:
    a, b = await ctx.parallel.all(
        [
            lambda: ctx.task(task_a, {}),
            lambda: ctx.task(task_b, {"input": a}),  # 'a' is not assigned yet
        ]
    )
    return [a, b]


async def pitfall2_right(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(task_a, {})
    b = await ctx.task(task_b, {"input": a})
    return [a, b]


async def pitfall3_all(inputs: Any, ctx: Any) -> Any:
    try:
        return await ctx.parallel.all(
            [
                lambda: ctx.task(task_a_slow, {}),
                lambda: ctx.task(task_b_fails, {}),  # fails at once
                lambda: ctx.task(task_c_slow, {}),
            ]
        )
    except TaskFailed as exc:
        return {"failed": exc.key, "error": [exc.error_type, exc.message]}


async def pitfall3_two_failures(inputs: Any, ctx: Any) -> Any:
    try:
        return await ctx.parallel.all(
            [
                lambda: ctx.task(task_a, {}),
                lambda: ctx.task(task_b_fails_slowly, {}),  # fails second
                lambda: ctx.task(task_c_fails, {}),  # fails first
            ]
        )
    except TaskFailed as exc:
        return {"failed": exc.key, "error": [exc.error_type, exc.message]}


PITFALL3_TASKS = {"A": task_a_slow, "B": task_b_fails, "C": task_c_slow}


async def pitfall3_map(inputs: Any, ctx: Any) -> Any:
    async def one(item_id: str) -> dict[str, Any]:
        try:
            result = await ctx.task(PITFALL3_TASKS[item_id], {})
            return {"id": item_id, "success": True, "result": result}
        except TaskFailed as error:
            return {"id": item_id, "success": False, "error": error.message}

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
    items = list(range(inputs["n"]))
    chunk_size = inputs["chunkSize"]
    total = 0
    for i in range(0, len(items), chunk_size):
        chunk = items[i : i + chunk_size]
        out = await ctx.parallel.map(
            chunk, lambda item: ctx.task(process_item_held, {"item": item})
        )
        total += sum(out)
    return total


async def pitfall5_limit(inputs: Any, ctx: Any) -> Any:
    out = await ctx.parallel.map(
        range(inputs["n"]),
        lambda item: ctx.task(process_item_held, {"item": item}),
        limit=inputs["limit"],
    )
    return sum(out)
