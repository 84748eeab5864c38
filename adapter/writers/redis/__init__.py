"""The Redis writer: caches rows as hashes, JSON or string values under templated keys."""

from adapter.writers.redis.mapping import RedisMapping, parse_redis_mapping
from adapter.writers.redis.writer import RedisWriter

__all__ = ["RedisMapping", "RedisWriter", "parse_redis_mapping"]
