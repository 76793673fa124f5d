"""`/api/status` from memory: fresh served as is, stale served while re-read, old waited for,
and a write drops what was read before it."""

from __future__ import annotations

import asyncio

from ygg.ops.web.status_cache import StatusCache


class Source:
    def __init__(self) -> None:
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def load(self) -> dict[str, int]:
        self.reads += 1
        number = self.reads
        if self.gate is not None:
            await self.gate.wait()
        return {"read": number}


def test_fresh_is_served_stale_is_served_while_read_again_old_is_waited_for() -> None:
    async def scenario() -> None:
        source = Source()
        cache = StatusCache(source.load, max_age_s=3600, stale_s=7200)
        assert await cache.get() == {"read": 1}
        assert await cache.get() == {"read": 1} and source.reads == 1
        cache.max_age_s = 0  # now stale
        assert await cache.get() == {"read": 1}  # served at once, read again behind it
        await asyncio.sleep(0)
        assert source.reads == 2 and await cache.get() == {"read": 2}
        cache.stale_s = 0  # now too old to serve
        assert await cache.get() == {"read": 3}

    asyncio.run(scenario())


def test_a_read_begun_before_a_write_is_not_kept() -> None:
    async def scenario() -> None:
        source = Source()
        cache = StatusCache(source.load, max_age_s=3600, stale_s=7200)
        source.gate = asyncio.Event()
        before = asyncio.create_task(cache.get())
        await asyncio.sleep(0)
        cache.drop()  # a write committed while that read was under way
        after = asyncio.create_task(cache.get())
        await asyncio.sleep(0)
        source.gate.set()
        assert await before == {"read": 1}
        assert await after == {"read": 2}
        assert await cache.get() == {"read": 2} and source.reads == 2

    asyncio.run(scenario())
