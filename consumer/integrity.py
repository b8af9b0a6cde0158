"""The integrity path of the processor: one batch's browser events, per student, in order.

The records of the chunk stream carry two event types (``proctoring.integrity``);
the processor hands the integrity events to :class:`IntegrityEvents` after the
batch's chunks (so one student's session item is written by one path at a
time). Per student, in ``seq`` order:

1. the event's row is written to the results table under
   ``chunk_id = integrity#<event_id>`` only if absent: the conditional write
   is the deduplication (an event the browser sent twice, a record delivered
   twice). A duplicate gets an errors row (``reason = duplicate_event``) and
   the ``IntegrityDuplicates`` metric, and nothing else;
2. an event older than one already judged (``seq`` below the last) is
   *out of order*: it is kept and judged on its own times all the same, with
   an errors row (``reason = out_of_order``) saying it came late;
3. the integrity rules (``proctoring.rules.integrity``) judge it with the
   exam's policy relaxed by the student's accommodations; each incident is an
   alert (deterministic id), created once and published like the video's;
4. the rules' state and the risk score (video and integrity incidents,
   ``proctoring.rules.risk_score``) are saved on the student's session item (read and
   kept through the processor's ``consumer.sessions.SessionCache``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import structlog

from consumer.analyser import Policies
from consumer.batch import BatchOutcome
from consumer.outlet import Outlet
from consumer.sessions import SessionCache
from proctoring.integrity import INTEGRITY, IntegrityEvent
from proctoring.metric_names import MetricName
from proctoring.rules import Accommodations, RuleState, risk_score
from proctoring.rules.integrity import IntegrityFinding, IntegrityState, judge
from proctoring.rules.speech import SpeechState
from proctoring.storage import Tables

__all__ = ["IntegrityEvents"]

_log = structlog.get_logger(__name__)


class IntegrityEvents:
    """See the module docstring. One per processor."""

    def __init__(
        self,
        *,
        tables: Tables,
        policies: Policies,
        outlet: Outlet,
        sessions: SessionCache,
    ) -> None:
        self._tables = tables
        self._policies = policies
        self._outlet = outlet
        self._sessions = sessions

    async def apply(
        self, events: Sequence[tuple[IntegrityEvent, str]], *, shard_id: str
    ) -> BatchOutcome:
        """``events``: each with its record's sequence number, in the stream's order."""
        counts = BatchOutcome()
        by_student: dict[tuple[str, str], list[tuple[IntegrityEvent, str]]] = defaultdict(list)
        for event, sequence_number in events:
            by_student[(event.exam_id, event.student_id)].append((event, sequence_number))
        for student_events in by_student.values():
            await self._student(sorted(student_events, key=lambda e: e[0].seq), counts, shard_id)
        return counts

    async def _student(
        self, events: list[tuple[IntegrityEvent, str]], counts: BatchOutcome, shard_id: str
    ) -> None:
        first = events[0][0]
        session = await self._sessions.load(first.exam_id, first.student_id)
        policy = (await self._policies.get(first.exam_id)).for_student(
            Accommodations.from_item(session)
        )
        state = IntegrityState.from_dict(session.get("integrity"))
        for event, sequence_number in events:
            with structlog.contextvars.bound_contextvars(
                exam=event.exam_id, student=event.student_id, integrity_seq=event.seq
            ):
                if not await self._write(event):
                    counts.duplicates += 1
                    counts.errors += 1
                    await self._error(event, sequence_number, "duplicate_event", "sent again")
                    self._outlet.metrics.add(MetricName.IntegrityDuplicates)
                    continue
                counts.results += 1
                self._outlet.metrics.add(MetricName.IntegrityEvents, Kind=event.kind)
                if event.seq < state.last_seq:
                    counts.errors += 1
                    await self._error(
                        event,
                        sequence_number,
                        "out_of_order",
                        f"came after event {state.last_seq}; kept and judged on its own times",
                    )
                state, findings = judge(state, event, policy)
                for found in findings:
                    await self._alert(event, found)
                    counts.alerts += 1
        session["integrity"] = state.to_dict()
        session["risk"] = _risk(session, state, policy)
        session["updated_at"] = self._outlet.now().isoformat()
        version = int(session.pop("version", 0))
        await self._sessions.save(session, expected_version=version, shard_id=shard_id)

    async def _write(self, event: IntegrityEvent) -> bool:
        """Write the event's timeline row unless it is there; True when this call wrote it."""
        now = self._outlet.now()
        row = {
            "session_id": event.session_id,
            "chunk_id": f"{INTEGRITY}#{event.event_id}",
            "exam_id": event.exam_id,
            "student_id": event.student_id,
            "source": INTEGRITY,
            "sequence": event.seq,
            "status": event.kind,
            "event_id": event.event_id,
            "captured_at": event.at.isoformat(),
            "duration_ms": event.duration_ms,
            "detail": event.detail,
            "uploaded_at": event.received_at.isoformat(),
            "processed_at": now.isoformat(),
            "expires_at": self._outlet.expiry(now),
        }
        written = await self._tables.put_result({k: v for k, v in row.items() if v is not None})
        return written is None

    async def _error(
        self, event: IntegrityEvent, sequence_number: str, reason: str, what: str
    ) -> None:
        await self._outlet.record_error(
            exam_id=event.exam_id,
            error_id=f"{INTEGRITY}#{event.student_id}#{event.event_id}#{reason}",
            stage=INTEGRITY,
            reason=reason,
            message=f"{event.kind} event {event.seq} ({event.event_id}): {what}",
            student_id=event.student_id,
            sequence_number=sequence_number,
        )

    async def _alert(self, event: IntegrityEvent, found: IntegrityFinding) -> None:
        finding = found.finding
        what = _describe(event, found)
        alert = self._outlet.alert(
            event.exam_id,
            event.student_id,
            INTEGRITY,
            finding,
            sequence=event.seq,
            first_sequence=event.seq,
            chunks=0,
            duration_s=found.duration_s,
            occurrences=found.occurrences,
            event_id=event.event_id,
            event_kind=event.kind,
            event_at=event.at.isoformat(),
            evidence={"message": what, "kind": event.kind, "at": event.at.isoformat()},
        )
        await self._outlet.raise_alert({k: v for k, v in alert.items() if v is not None}, what=what)


def _describe(event: IntegrityEvent, found: IntegrityFinding) -> str:
    rule = found.finding.rule
    if rule == "LEFT_EXAM":
        return f"exam tab hidden or window unfocused for {found.duration_s} s in the window"
    return f"{event.kind} at {event.at.isoformat()} ({found.occurrences} in the window)"


def _risk(session: dict[str, Any], state: IntegrityState, policy: Any) -> float:
    """The student's risk: the video's rule states, the integrity and the speech incidents,
    one formula."""
    states = [RuleState.from_dict(d) for d in session.get("rules", {}).values()]
    speech = SpeechState.from_dict(session.get("speech")).as_rule_state()
    return risk_score([*states, state.as_rule_state(), speech], policy)
