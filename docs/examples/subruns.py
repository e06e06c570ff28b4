from typing import Any

from replay_engine import Context, task


@task
def build_image(ref: str) -> str:
    return f"registry.example/app:{ref}"


@task
def roll_out(image: str) -> str:
    return f"{image} is live"


async def build(inputs: dict[str, Any], ctx: Context) -> dict[str, str]:
    return {"image": await ctx.task(build_image, {"ref": inputs["ref"]})}


async def deploy(inputs: dict[str, Any], ctx: Context) -> str:
    return await ctx.task(roll_out, {"image": inputs["image"]})


async def release(inputs: dict[str, Any], ctx: Context) -> str:
    # run_child returns Any (the child's result as decoded): say what you expect.
    built: dict[str, str] = await ctx.run_child(build, {"ref": inputs["ref"]})
    deployed: str = await ctx.run_child(  # run ids: "r1--0", then "r1-deploy"
        deploy, {"image": built["image"]}, run_id=f"{ctx.run_id}-deploy"
    )
    return deployed
