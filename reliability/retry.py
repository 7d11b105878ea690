"""Retry policy: full-jitter exponential backoff (docs/architecture.md, "Retry policy")."""

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: random(0, min(cap, base * 2**attempt)).

    A provider's Retry-After is a floor: waiting less would only hit the same limit again.
    """
    ceiling = min(cap, base * 2 ** max(attempt, 0))
    delay = rng() * ceiling
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
