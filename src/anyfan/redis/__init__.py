"""One rate-limit quota shared by every process and host: `anyfan.Rate` state in Redis.

Install the extra (``pip install 'anyfan[redis]'``, which brings ``hiredis``),
then give a `RedisStore` to the Rates that should share a quota::

    store = anyfan.redis.RedisStore("redis://localhost:6379/0")
    rpm = anyfan.Rate(500, per=60, store=store, key="openai-rpm")

Works with Redis 5 or later, Valkey, and Redis Cluster (a quota's keys share one
hash tag), on asyncio, uvloop and trio and through `anyfan.blocking`.
"""

from ._store import RedisStore

__all__ = ["RedisStore"]

RedisStore.__module__ = __name__
