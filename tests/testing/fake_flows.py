"""A release process whose tasks would touch the real world, for FakeTasks tests."""

from __future__ import annotations

from typing import Any

from replay_engine import TaskFailed, task


class RealWorldTouched(Exception):
    """A real task ran: the fake did not apply."""


@task
def lint(files: list[str]) -> dict[str, Any]:
    raise RealWorldTouched("lint really ran")


@task(retries=1)
async def deploy(service: str) -> dict[str, Any]:
    raise RealWorldTouched("deploy really ran")


@task(name="notify")
def notify(message: str) -> None:
    raise RealWorldTouched("notify really ran")


def plain_effect(n: int) -> int:
    raise RealWorldTouched("plain_effect really ran")


async def release(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    checked = await ctx.task(lint, {"files": inputs["files"]})
    results = await ctx.parallel.map(
        inputs["services"], lambda s: ctx.task(deploy, {"service": s})
    )
    try:
        await ctx.task(notify, {"message": f"released {len(results)}"})
        notified = True
    except TaskFailed as exc:
        notified = exc.message
    extra = await ctx.task(plain_effect, {"n": 2})
    return {"lint": checked, "deployed": results, "notified": notified, "extra": extra}


@task(executor="process")
def remote_scan(path: str) -> dict[str, Any]:
    raise RealWorldTouched("remote_scan really ran in a process pool")


async def scan(inputs: dict[str, Any], ctx: Any) -> Any:
    return await ctx.task(remote_scan, {"path": inputs["path"]})
