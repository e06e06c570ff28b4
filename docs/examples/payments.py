from typing import Any

from replay_engine import NonRetryable, task, task_context


class RateLimited(Exception): ...


class CardDeclined(NonRetryable): ...  # no retry can fix it


@task(
    retries=3,
    backoff=1.0,
    max_backoff=60.0,
    jitter=True,
    retry_on=(RateLimited, ConnectionError),
    non_retryable=(ValueError,),
)
def charge(card: str, cents: int) -> dict[str, Any]:
    tc = task_context()  # tc.attempt: 1, 2, …; tc.max_attempts: 4 here
    if cents <= 0:
        raise ValueError(f"cannot charge {cents} cents")  # never retried
    return {"card": card[-4:], "cents": cents, "attempt": tc.attempt}
