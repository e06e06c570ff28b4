import dataclasses
import datetime as dt
from typing import Any

from replay_engine import Context, task


@dataclasses.dataclass
class Release:
    version: tuple[int, int, int]
    due: dt.date


@task
def plan_release(service: str, after: dt.date) -> Release:
    return Release((1, 4, 2), after + dt.timedelta(days=7))


@task
async def announce(release: Release, channels: set[str]) -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def process(inputs: dict[str, Any], ctx: Context) -> str:
    # The typed form: mypy checks each argument against plan_release's signature.
    release = await ctx.call(plan_release)(inputs["service"], after=ctx.now().date())
    # The seed's form, with a mapping of keyword arguments, is typed by its result.
    sent = await ctx.task(announce, {"release": release, "channels": {"ops", "dev"}})
    # A Release with a tuple and a date, and a datetime: live and on replay alike.
    return f"{release.version} due {release.due:%Y-%m-%d}, announced {sent:%H:%M}"
