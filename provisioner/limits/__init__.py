"""Limits shared by every worker: token buckets and the concurrency budget in Redis, and the
pure adaptive concurrency and circuit breaker."""

from provisioner.limits.adaptive import AdaptiveConcurrency, SharedAdaptiveConcurrency
from provisioner.limits.breaker import CircuitBreaker
from provisioner.limits.budget import RedisConcurrencyBudget
from provisioner.limits.errors import CircuitOpen, RateLimitExceeded
from provisioner.limits.sliding_window import RedisSlidingWindow
from provisioner.limits.token_bucket import RedisTokenBucket

__all__ = [
    "AdaptiveConcurrency",
    "CircuitBreaker",
    "CircuitOpen",
    "RateLimitExceeded",
    "RedisConcurrencyBudget",
    "RedisSlidingWindow",
    "RedisTokenBucket",
    "SharedAdaptiveConcurrency",
]
