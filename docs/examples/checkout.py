from typing import Any

from payments import charge

from replay_engine import Context, TaskFailed


async def process(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    try:
        receipt = await ctx.task(charge, {"card": inputs["card"], "cents": 500})
    except TaskFailed as e:
        if e.error_type == "payments.CardDeclined":
            return {"status": "declined", "reason": e.message}
        if e.error_type == "builtins.ValueError":
            return {"status": "bad request", "reason": e.message}
        raise  # anything else fails the run
    return {"status": "paid", "receipt": receipt}
