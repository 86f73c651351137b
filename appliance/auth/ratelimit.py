"""Token buckets keyed by user or address, bounded in memory, with time taken from an injected clock."""

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """capacity tokens, refilled at rate tokens per second."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Limiter:
    """Many buckets of one kind; the least recently used ones are forgotten beyond max_keys."""

    def __init__(self, per_minute: int, burst: int, max_keys: int = 20_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, key: str, now: float) -> int:
        """Take a token for key; 0 when allowed, else whole seconds to wait (for Retry-After)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.burst, self.rate, self.burst, now)
            self._buckets[key] = bucket
            # A forgotten bucket comes back full: that only ever errs towards letting a client in.
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))

    def __len__(self) -> int:
        return len(self._buckets)
