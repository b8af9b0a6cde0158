"""The analysis path's policy reading: cached per exam, a broken item falls back to defaults."""

from __future__ import annotations

import asyncio

from consumer.analyser import Policies
from proctoring.aws import async_clients
from proctoring.rules import Policy
from proctoring.settings import Settings
from proctoring.storage import Tables


def test_policies_are_read_once_per_ttl_and_a_broken_one_means_the_defaults(
    settings: Settings,
) -> None:
    now = [0.0]

    async def run() -> list[Policy]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            policies = Policies(tables, tolerance=2, ttl=30.0, clock=lambda: now[0])
            seen = [await policies.get("exam")]  # no item: the defaults
            await tables.save_session(
                {"exam_id": "exam", "student_id": "#policy", "policy": {"tolerance": 4}},
                expected_version=0,
            )
            seen.append(await policies.get("exam"))  # still cached
            now[0] = 31.0
            seen.append(await policies.get("exam"))
            await tables.save_session(
                {"exam_id": "other", "student_id": "#policy", "policy": {"tolerance": "soon"}},
                expected_version=0,
            )
            seen.append(await policies.get("other"))
            return seen

    defaults, cached, fresh, broken = asyncio.run(run())
    assert defaults == cached == Policy(tolerance=2)
    assert fresh.tolerance == 4
    assert broken == Policy(tolerance=2), "an invalid policy never stops the consumer"
