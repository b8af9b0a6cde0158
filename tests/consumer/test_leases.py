"""Lease logic on an injected clock: balancing, expiry, stealing, parents before children.

The balancing decision is pure (``plan_takes``); the coordinator's writes go
to the emulator's DynamoDB, where the conditions are evaluated for real.
Nobody sleeps: time moves when the test moves the clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from consumer.leases import SHARD_END, Lease, LeaseCoordinator, LeaseLost, LeaseTable, plan_takes
from proctoring.aws import async_clients
from proctoring.settings import Settings
from proctoring.storage import from_item

T = TypeVar("T")


def _never(lease: Lease) -> bool:
    return False


def test_a_lone_worker_takes_every_free_lease() -> None:
    leases = [Lease(f"s{i}") for i in range(4)]
    plan = plan_takes(leases, me="a", expired=_never, rng=random.Random(1))
    assert sorted(lease.key for lease in plan.take) == ["s0", "s1", "s2", "s3"]
    assert (plan.target, plan.workers, plan.steal) == (4, 1, None)


def test_a_new_worker_steals_one_lease_from_the_most_loaded() -> None:
    leases = [Lease(f"s{i}", owner="a", counter=3) for i in range(4)]
    plan = plan_takes(leases, me="b", expired=_never, rng=random.Random(1))
    assert plan.take == ()
    assert plan.steal is not None and plan.steal.owner == "a"
    assert (plan.target, plan.workers) == (2, 2)


def test_three_workers_settle_at_one_or_two_shards_each() -> None:
    owners = {"s0": "a", "s1": "a", "s2": "b", "s3": "c"}
    leases = [Lease(key, owner=owner) for key, owner in owners.items()]
    for me in "abc":
        plan = plan_takes(leases, me=me, expired=_never, rng=random.Random(1))
        assert (plan.take, plan.steal) == ((), None), f"{me} must not move a balanced lease"


def test_a_third_worker_steals_from_a_worker_at_the_fair_share() -> None:
    leases = [
        Lease("s0", owner="a"),
        Lease("s1", owner="a"),
        Lease("s2", owner="b"),
        Lease("s3", owner="b"),
    ]
    plan = plan_takes(leases, me="c", expired=_never, rng=random.Random(1))
    assert plan.target == 2
    assert plan.steal is not None, "2/2/0 is not balanced: take one to reach 1-2 each"
    after = [lease if lease is not plan.steal else Lease(lease.key, owner="c") for lease in leases]
    assert plan_takes(after, me="c", expired=_never).steal is None, "one is enough"


def test_expired_leases_are_taken_before_anything_is_stolen() -> None:
    leases = [Lease("s0", owner="dead"), Lease("s1", owner="a"), Lease("s2", owner="a")]
    plan = plan_takes(leases, me="b", expired=lambda lease: lease.owner == "dead")
    assert [lease.key for lease in plan.take] == ["s0"]
    assert plan.steal is None


def test_children_wait_until_every_parent_has_ended() -> None:
    leases = [
        Lease("parent-a", checkpoint="49612"),
        Lease("parent-b", checkpoint=SHARD_END),
        Lease("merged", parents=("parent-a", "parent-b")),
    ]
    plan = plan_takes(leases, me="w", expired=_never)
    assert [lease.key for lease in plan.take] == ["parent-a"]
    ended = [Lease("parent-a", checkpoint=SHARD_END), *leases[1:]]
    assert [lease.key for lease in plan_takes(ended, me="w", expired=_never).take] == ["merged"]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(factory: Callable[..., Awaitable[T]], settings: Settings) -> T:
    async def main() -> T:
        async with async_clients(settings) as clients:
            table = LeaseTable(clients.dynamodb, settings.names.leases_table)
            return await factory(table, clients)

    return asyncio.run(main())


async def _items(clients: Any, settings: Settings) -> dict[str, dict[str, Any]]:
    response = await clients.dynamodb.scan(TableName=settings.names.leases_table)
    return {i["leaseKey"]: i for i in map(from_item, response["Items"])}


def _shards(*keys: str, parents: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    parents = parents or {}
    shards = []
    for key in keys:
        shard: dict[str, Any] = {"ShardId": key}
        names = ("ParentShardId", "AdjacentParentShardId")
        for name, parent in zip(names, parents.get(key, []), strict=False):
            shard[name] = parent
        shards.append(shard)
    return shards


def test_a_stolen_lease_is_lost_by_its_owner_before_the_thief_starts(settings: Settings) -> None:
    clock = _Clock()

    async def scenario(table: LeaseTable, clients: Any) -> None:
        a = LeaseCoordinator(table, "a", clock=clock, rng=random.Random(1))
        b = LeaseCoordinator(table, "b", clock=clock, rng=random.Random(2))
        assert await a.create_leases(_shards("s0", "s1", "s2", "s3")) == 4
        assert sorted(await a.balance()) == ["s0", "s1", "s2", "s3"]

        stolen = await b.balance()
        assert len(stolen) == 1
        (key,) = stolen
        assert b.start_after(key) == clock.now + 10.0, "the thief waits out a lease duration"

        clock.now += 3.4
        lost = await a.renew()
        assert lost == [key], "the victim learns at its next renewal"
        assert not a.valid(key)
        with pytest.raises(LeaseLost):
            await a.checkpoint(key, "4961")
        assert sorted(a.held()) == sorted({"s0", "s1", "s2", "s3"} - {key})

        items = await _items(clients, settings)
        assert items[key]["leaseOwner"] == "b"
        assert items[key]["ownerSwitchesSinceCheckpoint"] == 2, "taken by a, then by b"

    _run(scenario, settings)


def test_a_dead_workers_leases_expire_after_one_lease_duration(settings: Settings) -> None:
    clock = _Clock()

    async def scenario(table: LeaseTable, clients: Any) -> None:
        dead = LeaseCoordinator(table, "dead", clock=clock)
        heir = LeaseCoordinator(table, "heir", clock=clock)
        await dead.create_leases(_shards("s0", "s1"))
        assert len(await dead.balance()) == 2
        (stolen,) = await heir.balance()  # fair share is one each: steal one, nothing more
        clock.now += 9.9  # 'dead' never renews again
        assert await heir.balance() == [], "not expired yet: 'dead' still counts as live"
        clock.now += 0.2
        (taken,) = await heir.balance()
        assert sorted(heir.held()) == sorted([stolen, taken]) == ["s0", "s1"]
        assert heir.start_after(taken) <= clock.now, "an expired lease is processed at once"

    _run(scenario, settings)


def test_checkpoints_renewals_and_release_are_conditional_writes(settings: Settings) -> None:
    clock = _Clock()

    async def scenario(table: LeaseTable, clients: Any) -> None:
        a = LeaseCoordinator(table, "a", clock=clock)
        await a.create_leases(_shards("s0"))
        await a.balance()
        await a.checkpoint("s0", "100")
        clock.now += 3.4
        assert await a.renew() == []
        item = (await _items(clients, settings))["s0"]
        assert (item["checkpoint"], item["leaseOwner"], item["leaseCounter"]) == ("100", "a", 3)
        assert item["checkpointSubSequenceNumber"] == 0

        clock.now += 10.0  # renewals missed for a whole lease duration: no longer valid
        assert not a.valid("s0")
        assert await a.renew() == ["s0"]

        b = LeaseCoordinator(table, "b", clock=clock)
        assert await b.balance() == [], "the lease looks alive to a newcomer at first"
        await a.balance()  # 'a' sees its own name on a lease it dropped: free to take again
        assert a.held() == ["s0"]
        await a.release_all()
        item = (await _items(clients, settings))["s0"]
        assert "leaseOwner" not in item
        assert await b.balance() == ["s0"], "a released lease is taken without waiting"
        assert b.start_after("s0") <= clock.now

    _run(scenario, settings)


def test_child_leases_record_their_parents(settings: Settings) -> None:
    clock = _Clock()

    async def scenario(table: LeaseTable, clients: Any) -> None:
        a = LeaseCoordinator(table, "a", clock=clock)
        shards = _shards("p1", "p2", "m", parents={"m": ["p1", "p2"]})
        assert await a.create_leases(shards) == 3
        assert await a.create_leases(shards) == 0
        assert sorted(await a.balance()) == ["p1", "p2"]
        await a.checkpoint("p1", SHARD_END)
        assert await a.balance() == []
        await a.checkpoint("p2", SHARD_END)
        assert await a.balance() == ["m"]
        items = await _items(clients, settings)
        assert sorted(items["m"]["parentShardIds"]) == ["p1", "p2"]

    _run(scenario, settings)
