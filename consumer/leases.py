"""Shard leases in DynamoDB, the Kinesis Client Library's way.

Over 400 lines on purpose: the lease protocol is one concept - the item, the conditional
writes, expiry on our own clock and the balancing that acts on them only make sense together,
and a reader checking that two workers can never hold one lease needs all of it on one page.

Any number of identical workers share a stream's shards through one lease
per shard in the lease table. Items keep KCL's attribute names, so operators
read them with the tools they know::

    leaseKey                      the shard id
    leaseOwner                    the worker holding it (absent: free)
    leaseCounter                  bumped by every renewal, take, checkpoint, release
    checkpoint                    TRIM_HORIZON, a sequence number, or SHARD_END
    checkpointSubSequenceNumber   always 0 (no aggregated records)
    ownerSwitchesSinceCheckpoint  how often it changed hands since its last checkpoint
    parentShardIds                the shards this one was split or merged from

Every write is conditional on the counter (and owner) the writer last saw, so
two workers can never both believe they hold a lease. Time is never compared
across machines: a lease is expired when *this* worker has seen its counter
stand still for ``lease_duration`` on its own clock (the clock is injected).

``plan_takes`` is the pure balancing decision (unit-tested on an injected
clock); ``LeaseCoordinator`` applies it and keeps the held leases alive.

The table is a ``proctoring.dynamo.DynamoStore``: every call within the
timeout, a lost condition a ``Conflict`` (mapped to ``LeaseLost`` here), any
other failure a ``StorageError``.

Errors::

    ProctoringError
     ├── LeaseLost      a conditional write found the lease changed: stop that shard
     └── StorageError   a lease-table call failed or timed out (proctoring.dynamo)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from proctoring.dynamo import Conflict, DynamoStore, from_item, to_item
from proctoring.errors import ProctoringError

__all__ = [
    "SHARD_END",
    "TRIM_HORIZON",
    "Lease",
    "LeaseCoordinator",
    "LeaseLost",
    "LeaseTable",
    "Plan",
    "plan_takes",
]

SHARD_END = "SHARD_END"
TRIM_HORIZON = "TRIM_HORIZON"
_log = structlog.get_logger(__name__)


class LeaseLost(ProctoringError):
    """The lease changed under this worker (stolen, expired and taken, or released)."""


@dataclass(frozen=True)
class Lease:
    key: str
    owner: str | None = None
    counter: int = 0
    checkpoint: str = TRIM_HORIZON
    parents: tuple[str, ...] = ()
    owner_switches: int = 0

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lease:
        values = from_item(item)
        return cls(
            key=values["leaseKey"],
            owner=values.get("leaseOwner"),
            counter=int(values.get("leaseCounter", 0)),
            checkpoint=str(values.get("checkpoint", TRIM_HORIZON)),
            parents=tuple(values.get("parentShardIds") or ()),
            owner_switches=int(values.get("ownerSwitchesSinceCheckpoint", 0)),
        )


class LeaseTable(DynamoStore):
    """The conditional writes on the lease table; each returns the lease as written."""

    def __init__(self, dynamodb: Any, table: str, *, timeout: float = 10.0) -> None:
        super().__init__(dynamodb, timeout=timeout)
        self._table = table

    async def _update(
        self, lease: Lease, expression: str, condition: str, values: dict[str, Any]
    ) -> None:
        try:
            await self._call(
                "update_item",
                TableName=self._table,
                Key=to_item({"leaseKey": lease.key}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item(values),
            )
        except Conflict as exc:
            raise LeaseLost(
                f"lease {lease.key} changed (expected counter {lease.counter})"
            ) from exc

    async def _update_held(
        self, lease: Lease, expression: str, values: dict[str, Any] | None = None
    ) -> None:
        """A write that holds only while the lease is still ours at the counter we hold;
        ``expression`` sets ``leaseCounter = :next`` (the counter bumped)."""
        await self._update(
            lease,
            expression,
            "leaseOwner = :o AND leaseCounter = :held",
            {
                ":o": lease.owner,
                ":held": lease.counter,
                ":next": lease.counter + 1,
                **(values or {}),
            },
        )

    async def list(self) -> list[Lease]:
        return [
            Lease.from_item(item)
            async for page in self._pages("scan", TableName=self._table, ConsistentRead=True)
            for item in page.get("Items", [])
        ]

    async def create(self, key: str, parents: Iterable[str]) -> bool:
        """Create a free lease for a new shard; False when it exists already."""
        try:
            await self._call(
                "put_item",
                TableName=self._table,
                Item=to_item(
                    {
                        "leaseKey": key,
                        "leaseCounter": 0,
                        "checkpoint": TRIM_HORIZON,
                        "checkpointSubSequenceNumber": 0,
                        "ownerSwitchesSinceCheckpoint": 0,
                        "parentShardIds": sorted(parents),
                    }
                ),
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
        except Conflict:
            return False
        return True

    async def take(self, lease: Lease, owner: str) -> Lease:
        """Claim a free, expired or stolen lease at the counter we observed."""
        switches = lease.owner_switches + (1 if lease.owner != owner else 0)
        await self._update(
            lease,
            "SET leaseOwner = :o, leaseCounter = :next, ownerSwitchesSinceCheckpoint = :s",
            "leaseCounter = :seen",
            {":o": owner, ":next": lease.counter + 1, ":seen": lease.counter, ":s": switches},
        )
        return replace(lease, owner=owner, counter=lease.counter + 1, owner_switches=switches)

    async def renew(self, lease: Lease) -> Lease:
        await self._update_held(lease, "SET leaseCounter = :next")
        return replace(lease, counter=lease.counter + 1)

    async def checkpoint(self, lease: Lease, checkpoint: str) -> Lease:
        await self._update_held(
            lease,
            "SET checkpoint = :c, checkpointSubSequenceNumber = :zero,"
            " ownerSwitchesSinceCheckpoint = :zero, leaseCounter = :next",
            {":c": checkpoint, ":zero": 0},
        )
        return replace(lease, checkpoint=checkpoint, counter=lease.counter + 1, owner_switches=0)

    async def release(self, lease: Lease) -> None:
        """Give the lease up so another worker takes it at once (graceful shutdown)."""
        await self._update_held(lease, "REMOVE leaseOwner SET leaseCounter = :next")


@dataclass(frozen=True)
class Plan:
    """What one balancing round decided."""

    take: tuple[Lease, ...] = ()  # free or expired: may start at once
    steal: Lease | None = None  # from an overloaded worker: start after one lease duration
    target: int = 0
    workers: int = 1


def plan_takes(
    leases: Iterable[Lease],
    *,
    me: str,
    expired: Callable[[Lease], bool],
    rng: random.Random | None = None,
) -> Plan:
    """Decide which leases ``me`` takes this round (KCL's lease taker, simplified).

    Only shards that still need reading count: not finished, and every parent
    finished (a child waits for its parents). The fair share is
    ceil(shards / live workers), live workers being the owners of unexpired
    leases plus ``me``. Below it, take free and expired leases first; when
    there are none, steal one lease from the most loaded worker if it holds
    more than the fair share, or exactly the fair share while we still need
    more than one (KCL's rule).
    """
    rng = rng or random.Random()
    everything = {lease.key: lease for lease in leases}
    ready = [
        lease
        for lease in everything.values()
        if not lease.finished
        and all(everything.get(p) is None or everything[p].finished for p in lease.parents)
    ]
    live = {lease.owner for lease in ready if lease.owner and not expired(lease)} | {me}
    target = math.ceil(len(ready) / len(live)) if ready else 0
    mine = [lease for lease in ready if lease.owner == me]
    want = target - len(mine)
    if want <= 0:
        return Plan(target=target, workers=len(live))
    available = [
        lease for lease in ready if lease.owner != me and (not lease.owner or expired(lease))
    ]
    if available:
        rng.shuffle(available)
        return Plan(take=tuple(available[:want]), target=target, workers=len(live))
    load: dict[str, list[Lease]] = {}
    for lease in ready:
        if lease.owner and lease.owner != me:
            load.setdefault(lease.owner, []).append(lease)
    if not load:
        return Plan(target=target, workers=len(live))
    _, victims_leases = max(load.items(), key=lambda item: (len(item[1]), item[0]))
    # KCL's rule: steal what the most loaded worker holds over the target, and one lease
    # even when it is at the target if we still need more than one (else 4 shards on 3
    # workers would settle at 2/2/0); at most one per round.
    over = len(victims_leases) - target
    if len(victims_leases) < target or (over <= 0 and want <= 1):
        return Plan(target=target, workers=len(live))
    return Plan(steal=rng.choice(victims_leases), target=target, workers=len(live))


@dataclass
class _Held:
    lease: Lease
    renewed_at: float  # our clock, at the last successful write
    start_after: float  # our clock: a stolen lease waits out the victim's validity
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LeaseCoordinator:
    """The leases this worker holds: taking, renewing, checkpointing, releasing."""

    def __init__(
        self,
        table: LeaseTable,
        worker_id: str,
        *,
        lease_duration: float = 10.0,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.table = table
        self.worker_id = worker_id
        self.lease_duration = lease_duration
        self._clock = clock
        self._rng = rng
        self._held: dict[str, _Held] = {}
        self._seen: dict[str, tuple[int, str | None, float]] = {}  # counter, owner, since
        self.live_workers = 1

    # ---- what a shard consumer asks --------------------------------------------------
    def held(self) -> list[str]:
        return sorted(self._held)

    def lease(self, key: str) -> Lease:
        return self._held[key].lease

    def lost_event(self, key: str) -> asyncio.Event:
        return self._held[key].lost

    def start_after(self, key: str) -> float:
        return self._held[key].start_after

    def valid(self, key: str) -> bool:
        """Held, not lost, and renewed within one lease duration on our clock."""
        held = self._held.get(key)
        return (
            held is not None
            and not held.lost.is_set()
            and self._clock() - held.renewed_at < self.lease_duration
        )

    async def checkpoint(self, key: str, checkpoint: str) -> None:
        """Record progress; LeaseLost when the lease is no longer ours."""
        held = self._held.get(key)
        if held is None or held.lost.is_set():
            raise LeaseLost(f"lease {key} is not held")
        async with held.lock:
            try:
                held.lease = await self.table.checkpoint(held.lease, checkpoint)
            except LeaseLost:
                self._drop(key, "checkpoint")
                raise
            held.renewed_at = self._clock()

    # ---- the coordinator's own loop ----------------------------------------------------
    async def renew(self) -> list[str]:
        """Renew every held lease; return the keys that were lost."""
        lost: list[str] = []
        for key, held in list(self._held.items()):
            async with held.lock:
                if held.lost.is_set():
                    continue
                if self._clock() - held.renewed_at >= self.lease_duration:
                    self._drop(key, "expired before renewal")
                    lost.append(key)
                    continue
                try:
                    held.lease = await self.table.renew(held.lease)
                    held.renewed_at = self._clock()
                except LeaseLost:
                    self._drop(key, "renewal")
                    lost.append(key)
        return lost

    async def balance(self) -> list[str]:
        """One round of the lease taker; return the keys newly held."""
        leases = [
            # the table may still name us for a lease we dropped: it is up for taking
            replace(lease, owner=None)
            if lease.owner == self.worker_id and lease.key not in self._held
            else lease
            for lease in await self.table.list()
        ]
        self._observe(leases)
        plan = plan_takes(leases, me=self.worker_id, expired=self._expired, rng=self._rng)
        self.live_workers = plan.workers
        taken: list[str] = []
        now = self._clock()
        for lease, start_after in [(lease, now) for lease in plan.take] + (
            [(plan.steal, now + self.lease_duration)] if plan.steal else []
        ):
            try:
                mine = await self.table.take(lease, self.worker_id)
            except LeaseLost:
                continue  # someone else was quicker; the next round sees it
            self._held[lease.key] = _Held(mine, self._clock(), start_after)
            taken.append(lease.key)
            _log.info(
                "lease taken",
                shard=lease.key,
                stolen_from=lease.owner if lease is plan.steal else None,
                target=plan.target,
                workers=plan.workers,
            )
        for key in [k for k, h in self._held.items() if h.lease.finished]:
            del self._held[key]  # finished shards need no renewal
        return taken

    async def create_leases(self, shards: Iterable[dict[str, Any]]) -> int:
        """Create a lease for every shard that has none; return how many were new."""
        known = {lease.key for lease in await self.table.list()}
        created = 0
        for shard in shards:
            if shard["ShardId"] in known:
                continue
            parents = [
                p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
            ]
            created += await self.table.create(shard["ShardId"], parents)
        return created

    async def release_all(self) -> None:
        """Give every held lease back (graceful shutdown)."""
        for key, held in list(self._held.items()):
            async with held.lock:
                if not held.lost.is_set():
                    with contextlib.suppress(LeaseLost):  # taken already: nothing to give back
                        await self.table.release(held.lease)
                self._drop(key, "released")

    def forget(self, key: str) -> None:
        """Stop treating ``key`` as held (its consumer failed); a later round takes it again."""
        self._drop(key, "consumer failed")

    def _drop(self, key: str, why: str) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            held.lost.set()
            if why != "released":
                _log.warning("lease lost", shard=key, why=why)

    def _observe(self, leases: Iterable[Lease]) -> None:
        now = self._clock()
        for lease in leases:
            seen = self._seen.get(lease.key)
            if seen is None or seen[0] != lease.counter or seen[1] != lease.owner:
                self._seen[lease.key] = (lease.counter, lease.owner, now)

    def _expired(self, lease: Lease) -> bool:
        seen = self._seen.get(lease.key)
        return seen is not None and self._clock() - seen[2] >= self.lease_duration
