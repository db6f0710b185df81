"""The state store: dedup, locks, rate windows and kv, in-process and on the real Redis."""

from __future__ import annotations

import asyncio

import pytest

from bot.state import LockTimeout, MemoryState, RedisState


class Tick:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["memory", "redis"])
def store(request):
    tick = Tick()
    if request.param == "memory":
        return MemoryState(time_fn=tick), tick
    client = request.getfixturevalue("redis_client")
    return RedisState(client, prefix=client.test_prefix, time_fn=tick), tick


async def test_seen_marks_once(store):
    st, _ = store
    assert await st.seen("dedup:wecom:1", 60) is False
    assert await st.seen("dedup:wecom:1", 60) is True
    assert await st.seen("dedup:wecom:2", 60) is False
    await st.delete("dedup:wecom:1")
    assert await st.seen("dedup:wecom:1", 60) is False


async def test_kv_get_set(store):
    st, _ = store
    assert await st.get("token") is None
    await st.set("token", "abc", ttl=60)
    assert await st.get("token") == "abc"


async def test_sliding_window_and_wait(store):
    st, tick = store
    for _ in range(3):
        assert await st.acquire([("u:1", 3, 60, 1)]) == 0.0
    wait = await st.acquire([("u:1", 3, 60, 1)])
    assert 59 <= wait <= 60
    tick.t += 30
    assert await st.rate_ok("u:1", 3, 60) is False
    tick.t += 31
    assert await st.rate_ok("u:1", 3, 60) is True


async def test_all_or_nothing_across_rules(store):
    st, _ = store
    assert await st.acquire([("global", 1, 60, 1)]) == 0.0
    # The global window is full: the per-user slot must not be consumed either.
    assert await st.acquire([("user:a", 5, 60, 1), ("global", 1, 60, 1)]) > 0
    for _ in range(5):
        assert await st.acquire([("user:a", 5, 60, 1)]) == 0.0
    assert await st.acquire([("user:a", 5, 60, 1)]) > 0


async def test_cost_counts_units(store):
    st, _ = store
    assert await st.acquire([("appchat", 100, 60, 60)]) == 0.0
    assert await st.acquire([("appchat", 100, 60, 60)]) > 0
    assert await st.acquire([("appchat", 100, 60, 40)]) == 0.0


async def test_lock_serialises(store):
    st, _ = store
    order: list[str] = []

    async def worker(name: str) -> None:
        async with st.lock("sender:wecom:zhang", ttl=5):
            order.append(name + "+")
            await asyncio.sleep(0.02)
            order.append(name + "-")

    await asyncio.gather(worker("a"), worker("b"))
    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])


async def test_lock_wait_times_out(store):
    st, _ = store
    async with st.lock("k", ttl=5):
        with pytest.raises(LockTimeout):
            async with st.lock("k", ttl=5, wait=0.05):
                pass


async def test_redis_keys_stay_under_prefix(redis_client):
    st = RedisState(redis_client, prefix=redis_client.test_prefix)
    await st.seen("x", 60)
    await st.set("y", "1")
    await st.acquire([("z", 1, 60, 1)])
    keys = [k.decode() async for k in redis_client.scan_iter(match="*")]
    mine = [k for k in keys if k.startswith(redis_client.test_prefix)]
    assert len(mine) == 3
