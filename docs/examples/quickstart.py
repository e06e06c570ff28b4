from typing import Any

from replay_engine import Context, Engine, task


@task
def lint(files: list[str]) -> dict[str, Any]:
    return {"checked": len(files), "problems": []}


@task
def measure_coverage(files: list[str]) -> float:
    return 0.93


@task(retries=3, backoff=1.0, timeout=60.0)
async def deploy(service: str, env: str) -> dict[str, str]:
    return {"service": service, "env": env, "status": "live"}


async def process(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    lint_report, coverage = await ctx.parallel.all(
        [
            lambda: ctx.task(lint, {"files": inputs["files"]}),
            lambda: ctx.task(measure_coverage, {"files": inputs["files"]}),
        ]
    )
    deployed = await ctx.parallel.map(  # list[dict[str, str]]: deploy's result type
        ["api", "web", "worker"],
        lambda s: ctx.task(deploy, {"service": s, "env": inputs["env"]}),
        limit=2,
    )
    ctx.log("deployed", services=len(deployed))  # emitted once per run
    return {"lint": lint_report, "coverage": coverage, "deployed": deployed}


if __name__ == "__main__":
    engine = Engine(".replay")  # an LMDB directory
    run = engine.run(process, {"files": ["a.py"], "env": "prod"}, run_id="r1")
    run = engine.resume("r1")  # after a crash: same result, no repeats
    print(run.status, run.result, run.stats.replayed, run.stats.dispatched)
